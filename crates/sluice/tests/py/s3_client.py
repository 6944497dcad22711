"""boto3 and botocore's own signer against Sluice's S3 front, for what
aws-cli cannot express: presigned URLs replayed for another key or method,
a request signed with a skewed clock or a wrong secret, a path with an
encoded slash, a chunk-signed streaming upload (whole, truncated, tampered). Usage: s3_client.py ENDPOINT ACCESS_KEY SECRET COMMAND ARGS...
Prints one JSON object: {"status": ..., "code": ..., "body": ...}."""

import datetime
import json
import re
import sys
import urllib.error
import urllib.request

import boto3
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials


def client(endpoint, key, secret, **kw):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", retries={"max_attempts": 1}, **kw),
    )


def fetch(url, method="GET", headers=None, data=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req) as r:
            body = r.read().decode("utf-8", "replace")
            return {"status": r.status, "code": None, "body": body}
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        m = re.search(r"<Code>([^<]*)</Code>", body)
        return {"status": e.code, "code": m.group(1) if m else None, "body": body}


def signed(endpoint, key, secret, method, path, body=b"", skew=0):
    """A request signed by botocore's S3 SigV4 signer, sent as is."""
    url = endpoint + path
    req = AWSRequest(method=method, url=url, data=body)
    signer = botocore.auth.S3SigV4Auth(Credentials(key, secret), "s3", "us-east-1")
    if skew:
        real = datetime.datetime

        class Skewed(real):
            @classmethod
            def utcnow(cls):
                return real.utcnow() + datetime.timedelta(seconds=skew)

            @classmethod
            def now(cls, tz=None):
                return real.now(tz) + datetime.timedelta(seconds=skew)

        botocore.auth.datetime.datetime = Skewed
    signer.add_auth(req)
    headers = dict(req.headers.items())
    return fetch(url, method, headers, body or None)


def lying(endpoint, key, secret, path, body):
    """A PUT signed with a SHA-256 that is not its body's (botocore always
    signs the true one)."""
    import hashlib

    class Lying(botocore.auth.S3SigV4Auth):
        def payload(self, request):
            return hashlib.sha256(b"not the body").hexdigest()

    url = endpoint + path
    req = AWSRequest(method="PUT", url=url, data=body)
    Lying(Credentials(key, secret), "s3", "us-east-1").add_auth(req)
    return fetch(url, "PUT", dict(req.headers.items()), body)


def raw_signed(endpoint, key, secret, method, path):
    """SigV4 by hand over the path exactly as given (botocore normalises
    dot segments before it signs; an attacker's client does not)."""
    import hashlib
    import hmac
    import http.client
    import urllib.parse

    host = urllib.parse.urlsplit(endpoint).netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    empty = hashlib.sha256(b"").hexdigest()
    uri, _, query = path.partition("?")
    pairs = sorted(tuple((p.split("=", 1) + [""])[:2]) for p in query.split("&") if p)
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical = "\n".join([method, uri, canonical_query, f"host:{host}", f"x-amz-content-sha256:{empty}",
                           f"x-amz-date:{amz_date}", "", "host;x-amz-content-sha256;x-amz-date", empty])
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _signing_key(secret, day)
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
            f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}")
    conn = http.client.HTTPConnection(host)
    conn.request(method, path, headers={"x-amz-date": amz_date, "x-amz-content-sha256": empty,
                                        "Authorization": auth})
    r = conn.getresponse()
    body = r.read().decode("utf-8", "replace")
    m = re.search(r"<Code>([^<]*)</Code>", body)
    return {"status": r.status, "code": m.group(1) if m else None, "body": body}


def _signing_key(secret, day):
    import hashlib
    import hmac

    k = ("AWS4" + secret).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def streamed(endpoint, key, secret, bucket, obj, data, mode):
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload signed chunk by chunk
    (botocore does not send this encoding; older SDKs and Java's do).
    mode: "ok"; "truncated", a chunk that declares more bytes than it
    carries; "tampered", a chunk whose bytes changed after signing."""
    import hashlib
    import hmac
    import http.client
    import urllib.parse

    host = urllib.parse.urlsplit(endpoint).netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/us-east-1/s3/aws4_request"
    k = _signing_key(secret, day)
    streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    chunk_size = 64 * 1024
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    # The encoded length must be known before signing: each chunk's
    # header has a fixed-width signature.
    encoded_len = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    path = f"/{bucket}/{urllib.parse.quote(obj)}"
    signed_headers = ["content-encoding", "content-length", "host", "x-amz-content-sha256",
                      "x-amz-date", "x-amz-decoded-content-length"]
    values = {"content-encoding": "aws-chunked", "content-length": str(encoded_len), "host": host,
              "x-amz-content-sha256": streaming, "x-amz-date": amz_date,
              "x-amz-decoded-content-length": str(len(data))}
    canonical = "\n".join(["PUT", path, ""] + [f"{h}:{values[h]}" for h in signed_headers]
                          + ["", ";".join(signed_headers), streaming])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    seed = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    body, prev = b"", seed
    empty = hashlib.sha256(b"").hexdigest()
    for i, c in enumerate(chunks):
        chunk_to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty,
                                   hashlib.sha256(c).hexdigest()])
        sig = hmac.new(k, chunk_to_sign.encode(), hashlib.sha256).hexdigest()
        prev = sig
        sent = c
        if mode == "tampered" and i == 0:
            sent = bytes([c[0] ^ 1]) + c[1:]
        declared = len(c)
        if mode == "truncated" and i == len(chunks) - 2:
            # Claims 100 bytes more than follow: the rest of the stream is
            # read as its data, and the stream ends inside it.
            declared = len(c) + 100
        body += f"{declared:x};chunk-signature={sig}\r\n".encode() + sent + b"\r\n"
    values["content-length"] = str(len(body))
    values["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                               f"SignedHeaders={';'.join(signed_headers)}, Signature={seed}")
    del values["host"]
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.request("PUT", path, body=body, headers=values)
    r = conn.getresponse()
    text = r.read().decode("utf-8", "replace")
    m = re.search(r"<Code>([^<]*)</Code>", text)
    return {"status": r.status, "code": m.group(1) if m else None, "body": text}


def main():
    endpoint, key, secret, command, *args = sys.argv[1:]
    if command == "presign":
        # presign METHOD BUCKET KEY EXPIRES
        method, bucket, obj, expires = args
        op = {"GET": "get_object", "PUT": "put_object", "DELETE": "delete_object"}[method]
        url = client(endpoint, key, secret).generate_presigned_url(
            op, Params={"Bucket": bucket, "Key": obj}, ExpiresIn=int(expires)
        )
        print(json.dumps({"url": url}))
    elif command == "fetch":
        # fetch METHOD URL
        method, url = args
        print(json.dumps(fetch(url, method)))
    elif command == "signed":
        # signed METHOD PATH SKEW_SECONDS
        method, path, skew = args
        print(json.dumps(signed(endpoint, key, secret, method, path, skew=int(skew))))
    elif command == "raw":
        # raw METHOD PATH: signed by hand, sent byte for byte
        method, path = args
        print(json.dumps(raw_signed(endpoint, key, secret, method, path)))
    elif command == "streamed":
        # streamed BUCKET KEY SIZE MODE: a chunk-signed upload of SIZE bytes
        bucket, obj, size, mode = args
        data = bytes(i % 251 for i in range(int(size)))
        print(json.dumps(streamed(endpoint, key, secret, bucket, obj, data, mode)))
    elif command == "lying":
        # lying PATH SIZE: a body signed with another body's SHA-256
        path, size = args
        print(json.dumps(lying(endpoint, key, secret, path, bytes(int(size)))))
    elif command == "put":
        # put BUCKET KEY TEXT CONTENT_TYPE (boto3 defaults: trailing CRC32)
        bucket, obj, text, ctype = args
        try:
            client(endpoint, key, secret).put_object(
                Bucket=bucket, Key=obj, Body=text.encode(), ContentType=ctype
            )
            print(json.dumps({"status": 200, "code": None, "body": ""}))
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            print(json.dumps({"status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                              "code": err.get("Code"), "body": err.get("Message", "")}))
    elif command == "get":
        bucket, obj = args
        try:
            r = client(endpoint, key, secret).get_object(Bucket=bucket, Key=obj)
            print(json.dumps({"status": 200, "code": None, "body": r["Body"].read().decode()}))
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            print(json.dumps({"status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                              "code": err.get("Code"), "body": err.get("Message", "")}))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
