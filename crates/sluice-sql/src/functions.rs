//! What calling a function does, as far as policy is concerned.
//!
//! PostgreSQL functions can write, read server files, signal backends or run
//! SQL given as text. The classifier cannot know what a user-defined function
//! does, so it is optimistic about nothing: only builtins on the read-only
//! allowlist are read-only; every other call sets `calls_volatile`. A few
//! builtins are dangerous enough that they change the statement's action
//! (escalation): they are matched by their bare name whatever schema was
//! written, which can only over-report.

use sluice_core::Action;
use std::collections::HashSet;
use std::sync::OnceLock;

/// What one call means for the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effect {
    /// Known not to write anything (a builtin on the allowlist).
    pub read_only: bool,
    /// The action the call makes the statement at least.
    pub escalate: Option<Action>,
}

/// Builtins that do not write (they may be volatile in PostgreSQL's sense,
/// like `random()` or `now()`, but they change nothing).
const READ_ONLY: &[&str] = &[
    // aggregates
    "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "json_agg", "jsonb_agg",
    "json_object_agg", "jsonb_object_agg", "bool_and", "bool_or", "every", "bit_and", "bit_or",
    "bit_xor", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr",
    "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_count", "regr_r2",
    "percentile_cont", "percentile_disc", "mode", "any_value", "xmlagg", "range_agg",
    // window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // strings
    "lower", "upper", "initcap", "length", "char_length", "character_length", "octet_length",
    "bit_length", "substr", "substring", "position", "strpos", "overlay", "concat", "concat_ws",
    "replace", "translate", "trim", "btrim", "ltrim", "rtrim", "lpad", "rpad", "left", "right",
    "repeat", "reverse", "split_part", "starts_with", "format", "quote_ident", "quote_literal",
    "quote_nullable", "ascii", "chr", "md5", "sha224", "sha256", "sha384", "sha512", "encode",
    "decode", "to_hex", "regexp_replace", "regexp_match", "regexp_matches", "regexp_like",
    "regexp_count", "regexp_instr", "regexp_substr", "regexp_split_to_array",
    "regexp_split_to_table", "string_to_array", "string_to_table", "normalize", "unistr",
    "convert_from", "convert_to", "casefold",
    // numbers
    "abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "mod", "power", "pow", "sqrt",
    "cbrt", "exp", "ln", "log", "log10", "pi", "degrees", "radians", "sin", "cos", "tan", "asin",
    "acos", "atan", "atan2", "greatest", "least", "div", "gcd", "lcm", "factorial", "scale",
    "width_bucket", "random", "random_normal", "to_number", "to_char",
    // dates and times
    "now", "current_timestamp", "clock_timestamp", "statement_timestamp",
    "transaction_timestamp", "timeofday", "date_trunc", "date_part", "date_bin", "extract", "age",
    "to_date", "to_timestamp", "make_date", "make_time", "make_timestamp", "make_timestamptz",
    "make_interval", "justify_days", "justify_hours", "justify_interval", "isfinite", "timezone",
    "overlaps",
    // json
    "to_json", "to_jsonb", "row_to_json", "array_to_json", "json_build_object",
    "jsonb_build_object", "json_build_array", "jsonb_build_array", "json_object", "jsonb_object",
    "json_array_length", "jsonb_array_length", "json_each", "jsonb_each", "json_each_text",
    "jsonb_each_text", "json_extract_path", "jsonb_extract_path", "json_extract_path_text",
    "jsonb_extract_path_text", "json_object_keys", "jsonb_object_keys", "json_array_elements",
    "jsonb_array_elements", "json_array_elements_text", "jsonb_array_elements_text",
    "json_typeof", "jsonb_typeof", "json_strip_nulls", "jsonb_strip_nulls", "jsonb_pretty",
    "jsonb_set", "jsonb_set_lax", "jsonb_insert", "jsonb_path_query", "jsonb_path_query_array",
    "jsonb_path_query_first", "jsonb_path_exists", "jsonb_path_match", "json_populate_record",
    "jsonb_populate_record", "json_to_record", "jsonb_to_record", "json_to_recordset",
    "jsonb_to_recordset",
    // arrays and sets
    "array_length", "array_position", "array_positions", "array_to_string", "array_append",
    "array_prepend", "array_cat", "array_remove", "array_replace", "array_dims", "array_lower",
    "array_upper", "array_ndims", "array_fill", "cardinality", "unnest", "generate_series",
    "generate_subscripts", "num_nulls", "num_nonnulls", "trim_array", "array_sample",
    "array_shuffle", "array_reverse", "array_sort",
    // text search
    "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
    "ts_rank", "ts_rank_cd", "ts_headline", "setweight", "strip", "numnode", "querytree",
    // casts written as calls
    "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar", "bool", "date",
    "timestamp", "timestamptz", "interval", "time", "uuid", "inet", "cidr",
    // identity and catalog inspection
    "gen_random_uuid", "uuidv4", "uuidv7", "uuid_extract_timestamp", "uuid_extract_version",
    "version", "current_setting", "current_database", "current_schema", "current_schemas",
    "pg_backend_pid", "pg_typeof", "format_type", "pg_postmaster_start_time",
    "pg_conf_load_time", "pg_is_in_recovery", "pg_size_pretty", "pg_size_bytes",
    "pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
    "pg_database_size", "pg_column_size", "has_table_privilege", "has_column_privilege",
    "has_schema_privilege", "has_database_privilege", "has_function_privilege",
    "has_sequence_privilege", "pg_has_role", "row_security_active", "pg_get_userbyid",
    "pg_get_expr", "pg_get_constraintdef", "pg_get_indexdef", "pg_get_viewdef",
    "pg_get_functiondef", "pg_get_triggerdef", "pg_get_function_arguments",
    "pg_get_function_result", "pg_get_serial_sequence", "pg_table_is_visible",
    "pg_type_is_visible", "pg_function_is_visible", "obj_description", "col_description",
    "shobj_description", "to_regclass", "to_regtype", "to_regproc", "to_regprocedure",
    "to_regnamespace", "to_regrole", "currval", "lastval", "txid_current_snapshot",
    "pg_current_snapshot", "inet_client_addr", "inet_client_port", "inet_server_addr",
    "inet_server_port", "host", "masklen", "network", "family", "coalesce", "nullif",
];

/// Builtins that reach outside the database: server files, other backends,
/// the server configuration, remote connections, replication.
const ADMIN: &[&str] = &[
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
    "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir", "pg_ls_replslotdir", "lo_import", "lo_export", "pg_reload_conf",
    "pg_rotate_logfile", "pg_terminate_backend", "pg_cancel_backend", "pg_file_write",
    "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls", "pg_promote",
    "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop",
    "pg_start_backup", "pg_stop_backup", "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot", "pg_drop_replication_slot",
    "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot",
    "pg_replication_slot_advance", "pg_logical_slot_get_changes",
    "pg_logical_slot_peek_changes", "pg_logical_emit_message", "pg_replication_origin_create",
    "pg_replication_origin_drop", "pg_replication_origin_advance", "pg_wal_replay_pause",
    "pg_wal_replay_resume", "pg_log_backend_memory_contexts", "pg_import_system_collations",
    "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
    "pg_stat_reset_single_function_counters", "pg_stat_reset_slru", "pg_stat_reset_replication_slot",
    "pg_stat_statements_reset", "pg_sync_replication_slots",
];

/// Builtins that run SQL given to them as text, which the classifier cannot
/// see: they are as opaque as a DO block.
const RUNS_SQL_TEXT: &[&str] = &[
    "ts_stat", "ts_rewrite", "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml",
    "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml",
    "database_to_xmlschema", "database_to_xml_and_xmlschema",
];

/// Configuration parameters whose change is a change of identity.
const ROLE_SETTINGS: &[&str] = &["role", "session_authorization"];

fn read_only_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| READ_ONLY.iter().copied().collect())
}

/// Whether setting this configuration parameter changes the role
/// (parameter names are case-insensitive in PostgreSQL).
pub(crate) fn is_role_setting(name: &str) -> bool {
    ROLE_SETTINGS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// The effect of calling `schema.name(first_arg, ...)`. `first_arg` is the
/// first argument when it is a string constant (only looked at for
/// `set_config`).
pub(crate) fn effect(schema: Option<&str>, name: &str, first_arg: Option<&str>) -> Effect {
    let escalate = if name == "set_config" {
        // A non-constant parameter name could be 'role': assume it is.
        match first_arg {
            Some(setting) if !is_role_setting(setting) => Some(Action::Session),
            _ => Some(Action::Role),
        }
    } else if name == "pg_notify" {
        Some(Action::Listen)
    } else if ADMIN.contains(&name) || name.starts_with("dblink") {
        Some(Action::Admin)
    } else if RUNS_SQL_TEXT.contains(&name) {
        Some(Action::Procedural)
    } else {
        None
    };
    let builtin = matches!(schema, None | Some("pg_catalog"));
    Effect {
        read_only: escalate.is_none() && builtin && read_only_set().contains(name),
        escalate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_read_only_only_unqualified_or_in_pg_catalog() {
        assert!(effect(None, "lower", None).read_only);
        assert!(effect(Some("pg_catalog"), "lower", None).read_only);
        assert!(!effect(Some("public"), "lower", None).read_only);
        assert!(!effect(None, "nextval", None).read_only);
        assert!(!effect(None, "my_func", None).read_only);
    }

    #[test]
    fn set_config_escalates_by_parameter() {
        assert_eq!(effect(None, "set_config", Some("ROLE")).escalate, Some(Action::Role));
        assert_eq!(
            effect(None, "set_config", Some("search_path")).escalate,
            Some(Action::Session)
        );
        assert_eq!(effect(None, "set_config", None).escalate, Some(Action::Role));
    }

    #[test]
    fn dangerous_builtins_escalate_whatever_the_schema() {
        assert_eq!(effect(Some("x"), "pg_read_file", None).escalate, Some(Action::Admin));
        assert_eq!(effect(None, "dblink_exec", None).escalate, Some(Action::Admin));
        assert_eq!(effect(None, "ts_stat", None).escalate, Some(Action::Procedural));
    }
}
