use super::*;

fn read(method: &str, target: &str) -> Understood {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    match understand(method, path, query) {
        Ok(u) => u,
        Err(e) => panic!("{target}: {e}"),
    }
}

fn refused(method: &str, target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    match understand(method, path, query) {
        Ok(u) => panic!("{target} was read as {u:?}"),
        Err(e) => e.0,
    }
}

#[test]
fn a_named_get_in_a_namespace_is_a_get_of_that_object() {
    let u = read("GET", "/api/v1/namespaces/prod/secrets/db");
    assert_eq!(u.action, Action::Get);
    assert!(u.request.resource_request);
    assert_eq!(u.request.api_group, "");
    assert_eq!(u.request.api_version, "v1");
    assert_eq!(u.request.namespace.as_deref(), Some("prod"));
    assert_eq!(u.request.resource, "secrets");
    assert_eq!(u.request.name.as_deref(), Some("db"));
    assert_eq!(u.request.subresource, None);
}

#[test]
fn a_nameless_get_is_list_and_watch_follows_the_first_watch_value() {
    assert_eq!(
        read("GET", "/api/v1/namespaces/a/pods").action,
        Action::List
    );
    for on in [
        "watch=1",
        "watch=true",
        "watch=",
        "watch",
        "watch=yes",
        "watch=1&watch=0",
    ] {
        let u = read("GET", &format!("/api/v1/pods?{on}"));
        assert_eq!(u.action, Action::Watch, "{on}");
    }
    for off in ["watch=0", "watch=false", "watch=FALSE", "watch=0&watch=1"] {
        let u = read("GET", &format!("/api/v1/pods?{off}"));
        assert_eq!(u.action, Action::List, "{off}");
    }
    let u = read("GET", "/apis/apps/v1/watch/namespaces/a/deployments");
    assert_eq!(u.action, Action::Watch);
    assert_eq!(u.request.namespace.as_deref(), Some("a"));
    assert_eq!(u.request.resource, "deployments");
    assert_eq!(u.request.api_group, "apps");
}

#[test]
fn a_field_selector_on_metadata_name_names_the_object_as_go_sorts_it() {
    let u = read(
        "GET",
        "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&watch=1",
    );
    assert_eq!(u.action, Action::Watch);
    assert_eq!(u.request.name.as_deref(), Some("db"));
    let u = read(
        "GET",
        "/api/v1/secrets?fieldSelector=metadata.name%3Db,metadata.name%3Da",
    );
    assert_eq!(u.request.name.as_deref(), Some("a"));
    // Sorted as bytes, `==z` comes before `=a`.
    let u = read(
        "GET",
        "/api/v1/secrets?fieldSelector=metadata.name%3D%3Dz,metadata.name%3Da",
    );
    assert_eq!(u.request.name.as_deref(), Some("z"));
    for unnamed in [
        "fieldSelector=metadata.name!%3Ddb",
        "fieldSelector=metadata.name%3Da%3Db",
        "fieldSelector=metadata.name%3D..",
        "fieldSelector=spec.nodeName%3Dn",
        "fieldSelector=metadata.name%3Da%5Cq",
    ] {
        let u = read("GET", &format!("/api/v1/secrets?{unnamed}"));
        assert_eq!(u.request.name, None, "{unnamed}");
        assert_eq!(u.action, Action::List);
    }
    let u = read(
        "GET",
        "/api/v1/secrets?fieldSelector=metadata.name%3Da%5C%2Cb",
    );
    assert_eq!(u.request.name.as_deref(), Some("a,b"));
}

#[test]
fn methods_map_to_the_api_servers_verbs() {
    let t = "/api/v1/namespaces/a/pods/p";
    assert_eq!(
        read("POST", "/api/v1/namespaces/a/pods").action,
        Action::Create
    );
    assert_eq!(read("PUT", t).action, Action::Update);
    assert_eq!(read("PATCH", t).action, Action::Patch);
    assert_eq!(read("DELETE", t).action, Action::Delete);
    assert_eq!(read("HEAD", t).action, Action::Get);
    assert_eq!(
        read("DELETE", "/api/v1/namespaces/a/pods").action,
        Action::DeleteCollection
    );
    assert_eq!(read("OPTIONS", t).action, Action::Unknown);
}

#[test]
fn connect_subresources_are_their_own_actions_with_their_parameters() {
    let u = read(
        "POST",
        "/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&command=id&container=c&stdin=true&tty=false",
    );
    assert_eq!(u.action, Action::Exec);
    assert_eq!(u.verb, "create");
    let c = u.request.connect.unwrap();
    assert_eq!(c.command, ["sh", "-c", "id"]);
    assert_eq!(c.container.as_deref(), Some("c"));
    assert!(c.stdin && !c.tty);
    assert_eq!(
        read("GET", "/api/v1/namespaces/a/pods/p/exec?command=id").action,
        Action::Exec
    );
    assert_eq!(
        read("POST", "/api/v1/namespaces/a/pods/p/attach").action,
        Action::Attach
    );
    let u = read("POST", "/api/v1/namespaces/a/pods/p/portforward?ports=80");
    assert_eq!(u.action, Action::PortForward);
    assert_eq!(u.request.connect.unwrap().ports, ["80"]);
    assert_eq!(
        read("GET", "/api/v1/nodes/n/proxy/run/a/p/c").action,
        Action::Exec
    );
    assert_eq!(
        read("GET", "/api/v1/proxy/nodes/n/exec").action,
        Action::Exec
    );
    assert_eq!(
        read("GET", "/api/v1/namespaces/a/services/s/proxy/x").action,
        Action::Proxy
    );
    let u = read("GET", "/api/v1/proxy/namespaces/a/services/s/x/y");
    assert_eq!(u.action, Action::Proxy);
    assert_eq!(u.request.subresource, None);
}

#[test]
fn namespace_objects_and_their_subresources_keep_the_namespace() {
    let u = read("GET", "/api/v1/namespaces/kube-system");
    assert_eq!(u.request.resource, "namespaces");
    assert_eq!(u.request.name.as_deref(), Some("kube-system"));
    assert_eq!(u.request.namespace.as_deref(), Some("kube-system"));
    let u = read("PUT", "/api/v1/namespaces/x/finalize");
    assert_eq!(u.request.resource, "namespaces");
    assert_eq!(u.request.subresource.as_deref(), Some("finalize"));
    let u = read("GET", "/api/v1/nodes/n");
    assert_eq!(u.request.namespace, None);
}

#[test]
fn discovery_and_non_resource_urls_are_discover_only_when_read() {
    for p in [
        "/",
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps",
        "/apis/apps/v1",
        "/version",
        "/healthz",
        "/openapi/v2",
        "/foo/bar/baz",
    ] {
        let u = read("GET", p);
        assert_eq!(u.action, Action::Discover, "{p}");
        assert!(!u.request.resource_request);
    }
    assert_eq!(read("POST", "/apis/apps/v1").action, Action::Unknown);
}

#[test]
fn ambiguous_targets_are_refused_rather_than_normalised() {
    for p in [
        "/api/v1/namespaces/a/pods/../secrets",
        "/api/v1/namespaces/a/./secrets",
        "//api/v1/secrets",
        "/api/v1//secrets",
        "/api/v1/secrets/",
        "/api/v1/namespaces/a/secrets%2Fx",
        "/api/v1/namespaces/a/%73ecrets",
        "api/v1/secrets",
    ] {
        refused("GET", p);
    }
    refused("GET", "/api/v1/secrets?watch=1;watch=0");
    refused("GET", "/api/v1/secrets?labelSelector=%zz");
    refused("GET", "/api/v1/secrets?labelSelector=%+1");
    refused("GET", "/api/v1/watch");
    refused("POST", "/api/v1/watch/pods");
}

#[test]
fn dry_run_is_only_the_value_the_api_server_accepts() {
    let t = "/api/v1/namespaces/a/pods/p";
    assert!(read("DELETE", &format!("{t}?dryRun=All")).request.dry_run);
    assert!(!read("DELETE", t).request.dry_run);
    assert!(!read("DELETE", &format!("{t}?dryRun=all")).request.dry_run);
    assert!(
        !read("DELETE", &format!("{t}?dryRun=All&dryRun=x"))
            .request
            .dry_run
    );
}
