#!/usr/bin/env python3
"""Generates corpus.tsv: the labelled values behind the precision/recall test.

Run once (python3 generate.py > corpus.tsv); the output is committed so the
test is stable. Fixed seed; fake but realistic data: Luhn-valid cards of every
brand, IBANs with correct check digits, keys of every provider's format, and
look-alike negatives (order numbers, timestamps, UUIDs, ISBNs, hashes, SHAs,
Luhn-invalid card numbers, invalid SSNs...).

Columns: label, value, secret. `label` is a detector name or `none`; `secret`
is the substring that must not survive masking (empty for `none`). Newlines,
tabs and backslashes in values are written as \\n, \\t and \\\\.
"""
import base64
import json
import random
import string

R = random.Random(20261126)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
rows = []


def add(label, value, secret=""):
    assert secret == "" or secret in value, (label, value, secret)
    rows.append((label, value, secret))


def rnd(chars, n):
    return "".join(R.choice(chars) for _ in range(n))


def digits(n):
    return rnd(string.digits, n)


FIRST = ["ann", "bob", "carla", "deepak", "eve", "fatima", "george", "hiro", "ines", "jamal", "kim", "lucia", "mohammed", "nina", "olga", "pablo", "quinn", "rosa", "sven", "tariq", "uma", "victor", "wei", "ximena", "yusuf", "zoe"]
LAST = ["smith", "garcia", "müller", "okafor", "tanaka", "rossi", "dubois", "kowalski", "silva", "nguyen", "johansson", "oconnor", "haddad", "ivanova", "patel", "kim", "lee", "brown"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk", "uni-example.edu", "example.io", "shop.example.de", "example.fr"]
WORDS = "the order was shipped to customer after payment review and the invoice notes mention delivery window returns policy basic plan upgrade secret santa draw meeting notes quarterly report bearer bonds history password reset was requested by the user".split()
STREETS = ["Main St", "Oak Avenue", "Rue de Rivoli", "Baker Street", "Unter den Linden", "Calle Mayor", "Elm Road"]
CITIES = ["Springfield, IL 62704", "London SW1A 1AA", "75001 Paris", "10117 Berlin", "28013 Madrid", "Portland, OR 97201"]


def sentence(n=8):
    return " ".join(R.choice(WORDS) for _ in range(n))


def in_context(label, secret, templates):
    t = R.choice(templates)
    add(label, t.format(s=secret), secret)


# ---------------------------------------------------------------- positives

for _ in range(60):
    f, l, d = R.choice(FIRST), R.choice(LAST).replace("ü", "u"), R.choice(DOMAINS)
    local = R.choice([f"{f}.{l}", f"{f}{R.randint(1, 99)}", f"{f}+news", f"{f[0]}{l}", f"{f}_{l}"])
    e = f"{local}@{d}"
    in_context("email", e, ["{s}", "Contact: {s}", "reply to <{s}> please", "Key (email)=({s}) already exists.", "sent by {s}."])


def luhn_complete(prefix, length):
    body = prefix + digits(length - len(prefix) - 1)
    total = 0
    for i, ch in enumerate(reversed(body)):
        v = int(ch)
        if i % 2 == 0:
            v *= 2
            if v > 9:
                v -= 9
        total += v
    return body + str((10 - total % 10) % 10)


BRANDS = [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("644", 16), ("649", 16), ("3528", 16), ("3589", 16), ("36", 14), ("38", 14), ("300", 14), ("305", 14), ("62", 16), ("62", 19)]


def group(num, sep):
    if len(num) == 15:
        parts = [num[:4], num[4:10], num[10:]]
    elif len(num) == 14:
        parts = [num[:4], num[4:10], num[10:]]
    else:
        parts = [num[i:i + 4] for i in range(0, len(num), 4)]
    return sep.join(parts)


for i in range(80):
    prefix, length = BRANDS[i % len(BRANDS)]
    num = luhn_complete(prefix, length)
    shown = R.choice([num, num, group(num, " "), group(num, "-")])
    in_context("card", shown, ["{s}", "card {s} exp 12/27", "paid with {s}", "CC: {s};"])

for _ in range(50):
    area = R.choice([a for a in range(1, 900) if a != 666])
    ssn = f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"
    if R.random() < 0.2:
        ssn = ssn.replace("-", " ")
    in_context("ssn", ssn, ["{s}", "SSN: {s}", "ssn={s}", "social security number {s} on file"])

for _ in range(60):
    a, b, c = R.randint(201, 989), digits(3), digits(4)
    p = R.choice([
        f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", f"+1{a}{b}{c}",
        f"+44 20 {digits(4)} {digits(4)}", f"+49 30 {digits(8)}", f"+33 1 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
        f"1-800-{b}-{c}", f"020 {digits(4)} {digits(4)}", f"+81 3-{digits(4)}-{digits(4)}",
    ])
    in_context("phone", p, ["{s}", "tel: {s}", "call {s} after 5pm", "mobile {s}."])

IBAN = {"DE": (22, "n18"), "GB": (22, "a4n14"), "FR": (27, "n23"), "ES": (24, "n20"), "IT": (27, "a1n22"),
        "NL": (18, "a4n10"), "BE": (16, "n12"), "CH": (21, "n17"), "PL": (28, "n24"), "AT": (20, "n16"),
        "SE": (24, "n20"), "NO": (15, "n11"), "IE": (22, "a4n14"), "PT": (25, "n21")}


def iban(cc):
    _, spec = IBAN[cc]
    bban = ""
    for kind, n in [(spec[i], int(spec[i + 1:j])) for i, j in zip(*[[k for k, ch in enumerate(spec) if ch.isalpha()] + [len(spec)]] * 1, [k for k, ch in enumerate(spec) if ch.isalpha()][1:] + [len(spec)])]:
        bban += rnd(string.ascii_uppercase, n) if kind == "a" else digits(n)
    num = "".join(str(int(ch, 36)) for ch in bban + cc + "00")
    check = 98 - int(num) % 97
    return f"{cc}{check:02d}{bban}"


for i in range(50):
    cc = list(IBAN)[i % len(IBAN)]
    v = iban(cc)
    assert len(v) == IBAN[cc][0], (cc, v)
    if R.random() < 0.4:
        v = " ".join(v[k:k + 4] for k in range(0, len(v), 4))
    in_context("iban", v, ["{s}", "IBAN: {s}", "pay to {s} by friday", "iban={s}"])

for _ in range(40):
    k = R.choice(["AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"]) + rnd(string.ascii_uppercase + string.digits, 16)
    in_context("aws_access_key", k, ["{s}", "aws_access_key_id = {s}", "key {s} rotated", "AWS_ACCESS_KEY_ID={s}"])


def aws_secret():
    while True:
        s = rnd(B64, 40)
        if any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c in "0123456789/+" for c in s):
            return s


for _ in range(40):
    in_context("aws_secret_key", aws_secret(), ["{s}", "aws_secret_access_key = {s}", "AWS_SECRET_ACCESS_KEY={s}", "secret: {s}", "aws creds: AKIA-redacted / {s}"])

for _ in range(40):
    in_context("gcp_key", "AIza" + rnd(B64URL, 35), ["{s}", "key={s}", "https://maps.googleapis.com/maps/api/js?key={s}&callback=init", "GOOGLE_API_KEY: {s}"])

for i in range(45):
    key = rnd(B64, 86) + "=="
    if i % 3 == 0:
        add("azure_key", f"DefaultEndpointsProtocol=https;AccountName=acct{i};AccountKey={key};EndpointSuffix=core.windows.net", key)
    elif i % 3 == 1:
        add("azure_key", key, key)
    else:
        sig = rnd(ALNUM, 30) + "%2B" + rnd(ALNUM, 8) + "%3D"
        add("azure_key", f"https://acct{i}.blob.core.windows.net/c/f.txt?sv=2021-06-08&se=2026-12-01&sr=b&sp=r&sig={sig}", sig)

for i in range(45):
    if i % 4 == 0:
        t = "github_pat_" + rnd(ALNUM, 22) + "_" + rnd(ALNUM, 59)
    else:
        t = R.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + rnd(ALNUM, 36)
    in_context("github_token", t, ["{s}", "GITHUB_TOKEN={s}", "git clone https://x-access-token:{s}@github.com/o/r", "token {s}"])

for i in range(40):
    if i % 4 == 0:
        t = f"hooks.slack.com/services/T{rnd(string.ascii_uppercase + string.digits, 8)}/B{rnd(string.ascii_uppercase + string.digits, 8)}/{rnd(ALNUM, 24)}"
        add("slack_token", f"https://{t}", t)
    else:
        t = f"xox{R.choice('abpors')}-{digits(12)}-{digits(12)}-{rnd(ALNUM, 24)}"
        in_context("slack_token", t, ["{s}", "SLACK_BOT_TOKEN={s}", "slack token {s} expired"])

for _ in range(40):
    t = R.choice(["sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_", "whsec_"]) + rnd(ALNUM, R.choice([24, 32, 99]))
    in_context("stripe_key", t, ["{s}", "STRIPE_SECRET_KEY={s}", "stripe key {s} in use"])

for i in range(40):
    kind = R.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY"])
    lines = [rnd(B64, 64) for _ in range(R.randint(3, 8))]
    block = f"-----BEGIN {kind}-----\n" + "\n".join(lines)
    if i % 5 != 0:
        block += f"\n-----END {kind}-----"
    in_context("private_key", block, ["{s}", "{s}\n", "key file:\n{s}", '{{"type": "service_account", "private_key": "{s}"}}'.replace("{s}", "{s}")])


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


for _ in range(45):
    header = R.choice([{"alg": "HS256", "typ": "JWT"}, {"alg": "RS256", "kid": rnd(ALNUM, 8)}, {"typ": "JWT", "alg": "ES256"}])
    payload = {"sub": digits(8), "name": R.choice(FIRST), "iat": 1700000000 + R.randint(0, 10**7)}
    tok = f"{b64url(header)}.{b64url(payload)}.{rnd(B64URL, 43)}"
    in_context("jwt", tok, ["{s}", "id_token={s}", "session {s} expired", "jwt: {s}"])

for i in range(45):
    if i % 3 == 0:
        cred = base64.b64encode(f"{R.choice(FIRST)}:{rnd(ALNUM, 12)}".encode()).decode()
        in_context("bearer_token", cred, ["Authorization: Basic {s}", "authorization: basic {s}"])
    else:
        tok = rnd(ALNUM + "-._~", R.randint(20, 60))
        in_context("bearer_token", tok, ["Authorization: Bearer {s}", "bearer {s}", "header 'Authorization: Bearer {s}' rejected", "BEARER {s}"])

SCHEMES = ["postgres", "postgresql", "mysql", "mongodb", "mongodb+srv", "redis", "amqp", "https", "http", "ftp"]
for i in range(60):
    pw = rnd(ALNUM + "!$*-", R.randint(8, 20))
    host = R.choice(["db.example.com", "10.0.3.7", "cache.internal", "cluster0.abcde.mongodb.net", "mq.example.org"])
    form = i % 4
    if form in (0, 1):
        v = f"{R.choice(SCHEMES)}://{R.choice(FIRST)}:{pw}@{host}:{R.randint(1000, 9999)}/app"
    elif form == 2:
        v = f"host={host} port=5432 dbname=app user={R.choice(FIRST)} {R.choice(['password', 'PASSWORD', 'pwd', 'passwd'])}={pw} sslmode=require"
    else:
        v = f"Server={host};Database=app;User Id={R.choice(FIRST)};{R.choice(['Password', 'Pwd'])}={pw};"
    add("password", v, pw)

# ---------------------------------------------------------------- negatives

neg = []


def nadd(v):
    add("none", v)


for _ in range(40):
    nadd(R.choice([f"ORD-{digits(8)}", digits(R.randint(6, 12)), f"order #{digits(7)}", f"PO{digits(10)}", f"{digits(16)}"[:0] + f"ORD{digits(12)}"]))
for _ in range(40):
    y, mo, d = R.randint(1990, 2030), R.randint(1, 12), R.randint(1, 28)
    h, mi, s = R.randint(0, 23), R.randint(0, 59), R.randint(0, 59)
    nadd(R.choice([f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z", f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}.{digits(6)}+00",
                   str(R.randint(10**9, 2 * 10**9)), str(R.randint(10**12, 2 * 10**12)), f"{h:02d}:{mi:02d}:{s:02d}"]))
for _ in range(40):
    nadd(R.choice([f"{d:02d}/{mo:02d}/{y}" for d, mo, y in [(R.randint(1, 28), R.randint(1, 12), R.randint(1950, 2030))]] + [f"{R.randint(1950, 2030)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}", f"Jan {R.randint(1, 28)}, {R.randint(1990, 2030)}"]))
for _ in range(30):
    h = "%032x" % R.getrandbits(128)
    nadd(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
for _ in range(20):
    nadd(R.choice([f"978-{R.randint(0, 9)}-{digits(3)}-{digits(5)}-{R.randint(0, 9)}", f"ISBN {R.randint(0, 9)}-{digits(3)}-{digits(5)}-X", f"978{digits(10)}"]))
for _ in range(25):
    nadd(R.choice([f"INV-{R.randint(2015, 2026)}-{digits(6)}", f"invoice {digits(5)}/{R.randint(2015, 2026)}", f"TKT-{digits(5)}", f"case {digits(6)}-{digits(2)}"]))
for _ in range(30):
    nadd(R.choice([f"{R.randint(1, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}", f"2001:db8::{R.randint(1, 9999):x}:{R.randint(1, 9999):x}",
                   f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}/24", f"fe80::{R.getrandbits(16):x}:{R.getrandbits(16):x}%eth0"]))
for _ in range(30):
    nadd(R.choice([f"${R.randint(1, 9)},{digits(3)}.{digits(2)}", f"EUR {R.randint(1, 999)}.{digits(2)}", f"{R.randint(1, 99999)}.{digits(2)}", f"-{R.randint(1, 999)}.{digits(4)}", f"1,{digits(3)},{digits(3)}"]))
for _ in range(50):
    nadd(R.choice([sentence(R.randint(3, 15)), f"{R.choice(FIRST).title()} {R.choice(LAST).title()}", f"{R.randint(1, 999)} {R.choice(STREETS)}, {R.choice(CITIES)}",
                   "The password must be at least 12 characters.", "password authentication failed for user \"app\"", "Bearer bonds are basic instruments", "secret santa list"]))
for _ in range(30):
    nadd(base64.b64encode(bytes(R.getrandbits(8) for _ in range(R.choice([12, 16, 24, 32, 48, 60, 100])))).decode())
for _ in range(30):
    nadd(R.choice(["%032x" % R.getrandbits(128), "%064x" % R.getrandbits(256), "sha256:%064x" % R.getrandbits(256)]))
for _ in range(30):
    sha = "%040x" % R.getrandbits(160)
    nadd(R.choice([sha, f"commit {sha}", f"Merge {sha[:7]} into main", f"{sha} refs/heads/main"]))


def luhn_bad(prefix, length):
    good = luhn_complete(prefix, length)
    return good[:-1] + str((int(good[-1]) + R.randint(1, 9)) % 10)


for i in range(40):
    prefix, length = BRANDS[i % len(BRANDS)]
    bad = luhn_bad(prefix, length)
    nadd(R.choice([bad, group(bad, " "), group(bad, "-"), f"card {bad}"]))
for _ in range(20):
    # Luhn-valid but no known issuer (prefix 1, 7, 8, 9, 0)
    nadd(luhn_complete(R.choice(["1", "7", "8", "9", "0"]), 16))
for _ in range(30):
    nadd(R.choice([f"000-{digits(2)}-{digits(4)}", f"666-{digits(2)}-{digits(4)}", f"9{digits(2)}-{digits(2)}-{digits(4)}",
                   f"{R.randint(100, 665)}-00-{digits(4)}", f"{R.randint(100, 665)}-{R.randint(10, 99)}-0000", digits(9)]))
for _ in range(20):
    nadd(R.choice([digits(10), f"{digits(3)}{digits(3)}{digits(4)}", f"ext. {digits(4)}", f"{digits(2)}-{digits(3)}-{digits(4)}"]))
for _ in range(25):
    nadd(R.choice([f"v{R.randint(0, 9)}.{R.randint(0, 99)}.{R.randint(0, 999)}", f"/var/lib/app/{rnd(string.ascii_lowercase, 8)}.log", f"https://example.com/{rnd(string.ascii_lowercase, 6)}?page={R.randint(1, 99)}",
                   f"postgres://{R.choice(FIRST)}@db.example.com:5432/app", "user@localhost", f"@{R.choice(FIRST)}_{digits(3)}", f"SKU-{rnd(string.ascii_uppercase, 3)}-{digits(5)}",
                   f"1Z{rnd(string.ascii_uppercase + string.digits, 16)}", f"{R.uniform(-90, 90):.4f}, {R.uniform(-180, 180):.4f}", f"DE{digits(2)} {digits(4)} {digits(4)}", f"GB{digits(2)}TEST{digits(10)}"]))
for _ in range(20):
    nadd(R.choice([f"AKIA{rnd(string.ascii_uppercase, 10)}", f"ghp_{rnd(ALNUM, 10)}", "xoxo hugs", f"eyJ{rnd(B64URL, 20)}", f"sk_live_{rnd(ALNUM, 6)}", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                   f"run_test_{rnd(string.ascii_lowercase, 8)}", f"AIza{rnd(B64URL, 10)}", f"{rnd(string.ascii_lowercase, 40)}"]))
# The accepted false positive of the AWS secret heuristic: a standalone
# 40-character mixed-case base64 value that is not a key (3 of them).
for _ in range(3):
    nadd(aws_secret())


def esc(v):
    return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


print("# label\tvalue\tsecret   (generated by generate.py; do not edit by hand)")
for label, value, secret in rows:
    print(f"{label}\t{esc(value)}\t{esc(secret)}")
