"""Vendor key shapes from a maintained detector set: the regex plugins of detect-secrets (Yelp),
copied here by `python -m emblens.events.vendor_shapes --write` so that masking does not import the
library on every start (it costs a run some 125 ms). tests/test_secrets_by_meaning.py checks that
this copy is the installed detect-secrets' own.

Left out: the plugins emblens masks its own way (private-key blocks are masked whole, line by line;
JWTs and DSN passwords have entries of the catalogue that mask more), and public IP addresses,
which are not secrets.

Each entry: (secret type, pattern, `re` flags, a pattern polars' engine runs to find candidate lines).
"""

from __future__ import annotations

SOURCE = 'detect-secrets 1.5.0'
LEFT_OUT = ('IPPublicDetector', 'PrivateKeyDetector', 'JwtTokenDetector', 'BasicAuthDetector')

SHAPES: tuple[tuple[str, str, int, str], ...] = (('Artifactory Credentials',
  '(?:\\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\\s|"|$)',
  0,
  '(?:\\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\\s|"|$)'),
 ('Artifactory Credentials',
  '(?:\\s|=|:|"|^)AP[\\dABCDEF][a-zA-Z0-9]{8,}(?:\\s|"|$)',
  0,
  '(?:\\s|=|:|"|^)AP[\\dABCDEF][a-zA-Z0-9]{8,}(?:\\s|"|$)'),
 ('AWS Access Key',
  '(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}',
  0,
  '(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}'),
 ('AWS Access Key',
  'aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\\\'\\"]([0-9a-zA-Z/+]{40})[\\\'\\"]',
  2,
  '(?i:aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\\\'\\"]([0-9a-zA-Z/+]{40})[\\\'\\"])'),
 ('Azure Storage Account access key', 'AccountKey=[a-zA-Z0-9+\\/=]{88}', 0, 'AccountKey=[a-zA-Z0-9+\\/=]{88}'),
 ('Cloudant Credentials',
  '(?:(?<=\\W)|(?<=^))(?:\\[|)(?:"|\\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([0-9a-f]{64})(?:"|\\\'|)',
  2,
  '(?i:(?:|)(?:\\[|)(?:"|\\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([0-9a-f]{64})(?:"|\\\'|))'),
 ('Cloudant Credentials',
  '(?:(?<=\\W)|(?<=^))(?:\\[|)(?:"|\\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-z]{24})(?:"|\\\'|)',
  2,
  '(?i:(?:|)(?:\\[|)(?:"|\\\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-z]{24})(?:"|\\\'|))'),
 ('Cloudant Credentials',
  '(?:https?\\:\\/\\/)[\\w\\-]+\\:([0-9a-f]{64})\\@[\\w\\-]+\\.cloudant\\.com',
  2,
  '(?i:(?:https?\\:\\/\\/)[\\w\\-]+\\:([0-9a-f]{64})\\@[\\w\\-]+\\.cloudant\\.com)'),
 ('Cloudant Credentials',
  '(?:https?\\:\\/\\/)[\\w\\-]+\\:([a-z]{24})\\@[\\w\\-]+\\.cloudant\\.com',
  2,
  '(?i:(?:https?\\:\\/\\/)[\\w\\-]+\\:([a-z]{24})\\@[\\w\\-]+\\.cloudant\\.com)'),
 ('Discord Bot Token',
  '[MNO][a-zA-Z\\d_-]{23,25}\\.[a-zA-Z\\d_-]{6}\\.[a-zA-Z\\d_-]{27}',
  0,
  '[MNO][a-zA-Z\\d_-]{23,25}\\.[a-zA-Z\\d_-]{6}\\.[a-zA-Z\\d_-]{27}'),
 ('GitHub Token', '(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}', 0, '(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}'),
 ('GitLab Token',
  '(glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\\-]{20,50}(?!\\w)',
  0,
  '(glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\\-]{20,50}'),
 ('GitLab Token', 'GR1348941[A-Za-z0-9_\\-]{20,50}(?!\\w)', 0, 'GR1348941[A-Za-z0-9_\\-]{20,50}'),
 ('GitLab Token',
  'glcbt-([0-9a-fA-F]{2}_)?[A-Za-z0-9_\\-]{20,50}(?!\\w)',
  0,
  'glcbt-([0-9a-fA-F]{2}_)?[A-Za-z0-9_\\-]{20,50}'),
 ('GitLab Token', 'glimt-[A-Za-z0-9_\\-]{25}(?!\\w)', 0, 'glimt-[A-Za-z0-9_\\-]{25}'),
 ('GitLab Token', 'glptt-[A-Za-z0-9_\\-]{40}(?!\\w)', 0, 'glptt-[A-Za-z0-9_\\-]{40}'),
 ('GitLab Token', 'glagent-[A-Za-z0-9_\\-]{50,1024}(?!\\w)', 0, 'glagent-[A-Za-z0-9_\\-]{50,1024}'),
 ('GitLab Token', 'gloas-[A-Za-z0-9_\\-]{64}(?!\\w)', 0, 'gloas-[A-Za-z0-9_\\-]{64}'),
 ('IBM Cloud IAM Key',
  '(?:(?<=\\W)|(?<=^))(?:\\[|)(?:"|\\\'|)(?:ibm(?:_|-|)cloud(?:_|-|)iam|cloud(?:_|-|)iam|ibm(?:_|-|)cloud|ibm(?:_|-|)iam|ibm|iam|cloud|)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-zA-Z0-9_\\-]{44}(?![a-zA-Z0-9_\\-]))(?:"|\\\'|)',
  2,
  '(?i:(?:|)(?:\\[|)(?:"|\\\'|)(?:ibm(?:_|-|)cloud(?:_|-|)iam|cloud(?:_|-|)iam|ibm(?:_|-|)cloud|ibm(?:_|-|)iam|ibm|iam|cloud|)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-zA-Z0-9_\\-]{44})(?:"|\\\'|))'),
 ('IBM COS HMAC Credentials',
  '(?:(?<=\\W)|(?<=^))(?:\\[|)(?:"|\\\'|)(?:(?:ibm)?[-_]?cos[-_]?(?:hmac)?|)(?:_|-|)(?:secret[-_]?(?:access)?[-_]?key)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-f0-9]{48}(?![a-f0-9]))(?:"|\\\'|)',
  2,
  '(?i:(?:|)(?:\\[|)(?:"|\\\'|)(?:(?:ibm)?[-_]?cos[-_]?(?:hmac)?|)(?:_|-|)(?:secret[-_]?(?:access)?[-_]?key)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-f0-9]{48})(?:"|\\\'|))'),
 ('Mailchimp Access Key', '[0-9a-z]{32}-us[0-9]{1,2}', 0, '[0-9a-z]{32}-us[0-9]{1,2}'),
 ('NPM tokens',
  '\\/\\/.+\\/:_authToken=\\s*((npm_.+)|([A-Fa-f0-9-]{36})).*',
  0,
  '\\/\\/.+\\/:_authToken=\\s*((npm_.+)|([A-Fa-f0-9-]{36})).*'),
 ('OpenAI Token',
  'sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}',
  0,
  'sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}'),
 ('PyPI Token', 'pypi-AgEIcHlwaS5vcmc[A-Za-z0-9-_]{70,}', 0, 'pypi-AgEIcHlwaS5vcmc[A-Za-z0-9-_]{70,}'),
 ('PyPI Token', 'pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9-_]{70,}', 0, 'pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9-_]{70,}'),
 ('SendGrid API Key', 'SG\\.[a-zA-Z0-9_-]{22}\\.[a-zA-Z0-9_-]{43}', 0, 'SG\\.[a-zA-Z0-9_-]{22}\\.[a-zA-Z0-9_-]{43}'),
 ('Slack Token', 'xox(?:a|b|p|o|s|r)-(?:\\d+-)+[a-z0-9]+', 2, '(?i:xox(?:a|b|p|o|s|r)-(?:\\d+-)+[a-z0-9]+)'),
 ('Slack Token',
  'https://hooks\\.slack\\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+',
  66,
  '(?i:https://hooks\\.slack\\.com/services/t)'),
 ('SoftLayer Credentials',
  '(?:(?<=\\W)|(?<=^))(?:\\[|)(?:"|\\\'|)(?:softlayer|sl)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-z0-9]{64})(?:"|\\\'|)',
  2,
  '(?i:(?:|)(?:\\[|)(?:"|\\\'|)(?:softlayer|sl)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)(?:"|\\\'|)(?:\\]|)(?: '
  '*)(?:=|:|:=|=>| +|::)(?: *)(?:"|\\\'|)([a-z0-9]{64})(?:"|\\\'|))'),
 ('SoftLayer Credentials',
  '(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64})',
  2,
  '(?i:(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64}))'),
 ('Square OAuth Secret', 'sq0csp-[0-9A-Za-z\\\\\\-_]{43}', 0, 'sq0csp-[0-9A-Za-z\\\\\\-_]{43}'),
 ('Stripe Access Key', '(?:r|s)k_live_[0-9a-zA-Z]{24}', 0, '(?:r|s)k_live_[0-9a-zA-Z]{24}'),
 ('Telegram Bot Token', '\\d{8,10}:[0-9A-Za-z_-]{35}', 0, '\\d{8,10}:[0-9A-Za-z_-]{35}'),
 ('Twilio API Key', 'AC[a-z0-9]{32}', 0, 'AC[a-z0-9]{32}'),
 ('Twilio API Key', 'SK[a-z0-9]{32}', 0, 'SK[a-z0-9]{32}'))


def generate() -> tuple[str, tuple[tuple[str, str, int, str], ...]]:
    """The shapes of the installed detect-secrets: its version and its regex plugins' patterns."""
    import importlib
    import inspect
    import pkgutil
    import re
    from importlib.metadata import version

    import detect_secrets.plugins as plugins
    from detect_secrets.plugins.base import RegexBasedDetector

    from emblens.patterns.linear import rust_ok
    from emblens.patterns.literals import literals

    out = []
    for info in sorted(pkgutil.iter_modules(plugins.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"detect_secrets.plugins.{info.name}")
        for name, cls in sorted(inspect.getmembers(module, inspect.isclass)):
            if (not issubclass(cls, RegexBasedDetector) or cls is RegexBasedDetector or cls.__module__ != module.__name__
                    or name in LEFT_OUT):
                continue
            for p in cls.denylist:
                flags = int(p.flags & (re.IGNORECASE | re.VERBOSE))
                hint = p.pattern if not flags & re.VERBOSE else None
                if hint is not None and not rust_ok(hint):
                    # a superset for polars' engine: the look-arounds dropped
                    hint = re.sub(r"\(\?<?[=!](?:[^()]|\([^()]*\))*\)", "", hint)
                    hint = hint if rust_ok(hint) else None
                if hint is None:
                    lits = literals(p.pattern)
                    hint = "|".join(re.escape(x) for x in lits) if lits else None
                if hint is None:
                    raise ValueError(f"{name}: no candidate pattern for {p.pattern!r}")
                if flags & re.IGNORECASE:
                    hint = f"(?i:{hint})"
                out.append((cls.secret_type, p.pattern, flags, hint))
    return f"detect-secrets {version('detect-secrets')}", tuple(out)


def _write() -> None:
    import pprint
    from pathlib import Path

    source, shapes = generate()
    path = Path(__file__)
    text = path.read_text(encoding="utf-8")
    head = text[: text.index("SOURCE = ")]
    body = text[text.index("\n\ndef generate()"):]
    path.write_text(head + f"SOURCE = {source!r}\nLEFT_OUT = {LEFT_OUT!r}\n\nSHAPES: tuple[tuple[str, str, int, str], ...] = "
                    + pprint.pformat(shapes, width=120) + "\n" + body, encoding="utf-8")
    print(f"wrote {len(shapes)} shapes of {source} to {path}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        _write()
    else:
        print(__doc__)
