"""Drives bench/s3.sh: presigned URLs (so curl moves the bytes, not
Python), and small-object operations per second with boto3.

  s3_load.py presign ENDPOINT KEY SECRET METHOD BUCKET OBJECT
  s3_load.py ops ENDPOINT KEY SECRET BUCKET OBJECT SECONDS THREADS
  s3_load.py csv PATH BYTES
"""

import sys
import threading
import time

import boto3
from botocore.config import Config


def client(endpoint, key, secret):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", max_pool_connections=64),
    )


def main():
    cmd, *a = sys.argv[1:]
    if cmd == "presign":
        endpoint, key, secret, method, bucket, obj = a
        op = {"GET": "get_object", "PUT": "put_object"}[method]
        print(client(endpoint, key, secret).generate_presigned_url(
            op, Params={"Bucket": bucket, "Key": obj}, ExpiresIn=3600))
    elif cmd == "ops":
        endpoint, key, secret, bucket, obj, seconds, threads = a
        c = client(endpoint, key, secret)
        stop = time.monotonic() + float(seconds)
        counts = []

        def run():
            n = 0
            while time.monotonic() < stop:
                c.head_object(Bucket=bucket, Key=obj)
                n += 1
            counts.append(n)

        ts = [threading.Thread(target=run) for _ in range(int(threads))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print(f"{sum(counts) / float(seconds):.0f}")
    elif cmd == "csv":
        path, size = a[0], int(a[1])
        line = "".join(f"{i},user{i},user{i}@example.com,note {i}\n" for i in range(1000)).encode()
        with open(path, "wb") as f:
            f.write(b"id,name,email,note\n")
            written = 0
            while written < size:
                f.write(line)
                written += len(line)
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
