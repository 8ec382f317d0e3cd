"""Local stand-ins for the clouds' credential services, each speaking its documented
protocol on 127.0.0.1, beside the model endpoint they guard (one provider_server.StandIn, one route
function). They issue short-lived tokens and record every grant, so a test can tell a
token refreshed ahead of its expiry from one refreshed after a refusal.

- Google OAuth 2.0 token endpoint (JWT bearer grant, RFC 7523: the RS256 signature is
  verified with the service account's public key) and the GCE metadata server;
- Microsoft Entra ID v2.0 token endpoint (client credentials grant), the Azure instance
  metadata service's managed identity endpoint and App Service's identity endpoint;
- AWS STS AssumeRoleWithWebIdentity (query API, XML answer), the ECS/EKS container
  credentials endpoint and the EC2 instance metadata service (IMDSv2)."""

import base64
import itertools
import json
import time
import urllib.parse

from provider_server import verify_sigv4

_serial = itertools.count(1)


class Issuer:
    """Tokens (or AWS key pairs) that expire after `lifetime` seconds."""

    def __init__(self, lifetime):
        self.lifetime = lifetime
        self.grants = []  # (time, what) of every token issued
        self.live = {}  # token or access key id -> (expiry, secret)

    def token(self):
        token = f"tok-{next(_serial)}"
        self.live[token] = (time.time() + self.lifetime, None)
        self.grants.append(time.time())
        return token

    def aws_keys(self):
        akid, secret, session = f"ASIA{next(_serial):012d}", f"secret-{next(_serial)}", f"session-{next(_serial)}"
        self.live[akid] = (time.time() + self.lifetime, (secret, session))
        self.grants.append(time.time())
        return akid, secret, session, time.time() + self.lifetime

    def valid(self, token):
        return self.live.get(token, (0, None))[0] > time.time()

    def revoke_all(self):
        self.live.clear()


JSON = "application/json"


def form(raw):
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}


def query(path):
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).items()}


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def google_jwt_grant(issuer, public_key, email, audience, scope, raw):
    """The token endpoint's answer to a JWT bearer grant (RFC 7523), checking signature and claims."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    f = form(raw)
    if f.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return 400, {"error": "unsupported_grant_type"}, JSON
    head, claims, sig = f["assertion"].split(".")
    try:
        public_key.verify(b64url(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, JSON
    c = json.loads(b64url(claims))
    if json.loads(b64url(head))["alg"] != "RS256" or c["iss"] != email or c["aud"] != audience \
            or c["scope"] != scope or not c["iat"] <= time.time() + 5 < c["exp"] + 5:
        return 400, {"error": "invalid_grant", "error_description": f"bad claims {c}"}, JSON
    return 200, {"access_token": issuer.token(), "expires_in": issuer.lifetime, "token_type": "Bearer"}, JSON


def entra_client_credentials(issuer, client_id, secret, scope, raw):
    f = form(raw)
    if f.get("grant_type") != "client_credentials" or f.get("scope") != scope:
        return 400, {"error": "invalid_request", "error_description": f"got {sorted(f)}"}, JSON
    if f.get("client_id") != client_id or f.get("client_secret") != secret:
        return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}, JSON
    return 200, {"token_type": "Bearer", "expires_in": issuer.lifetime, "ext_expires_in": issuer.lifetime,
                 "access_token": issuer.token()}, JSON


def azure_managed_identity(issuer, resource, path):
    """The IMDS and App Service answers: expires_in and expires_on as strings."""
    if query(path).get("resource") != resource:
        return 400, {"error": "invalid_resource"}, JSON
    token = issuer.token()
    return 200, {"access_token": token, "expires_in": str(issuer.lifetime),
                 "expires_on": str(int(time.time() + issuer.lifetime)), "resource": resource,
                 "token_type": "Bearer"}, JSON


def iso8601(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def sts_assume_role_with_web_identity(issuer, role_arn, web_token, raw):
    f = form(raw)
    if f.get("Action") != "AssumeRoleWithWebIdentity" or f.get("RoleArn") != role_arn \
            or f.get("WebIdentityToken") != web_token:
        return 403, ("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                     f"<Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>"), "text/xml"
    akid, secret, session, expires = issuer.aws_keys()
    return 200, ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                 "<AssumeRoleWithWebIdentityResult><Credentials>"
                 f"<SessionToken>{session}</SessionToken><SecretAccessKey>{secret}</SecretAccessKey>"
                 f"<Expiration>{iso8601(expires)}</Expiration><AccessKeyId>{akid}</AccessKeyId>"
                 "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"), "text/xml"


def aws_json_credentials(issuer):
    akid, secret, session, expires = issuer.aws_keys()
    return 200, {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": akid, "SecretAccessKey": secret,
                 "Token": session, "Expiration": iso8601(expires)}, JSON


def aws_signed_by_live_keys(issuer, request, region, service):
    """A SigV4 request signed with keys the issuer gave and that have not expired."""
    auth = request["headers"].get("authorization", "")
    akid = auth.split("Credential=")[1].split("/")[0] if "Credential=" in auth else ""
    expiry, pair = issuer.live.get(akid, (0, None))
    if pair is None or expiry <= time.time():
        return False
    secret, session = pair
    return request["headers"].get("x-amz-security-token") == session and \
        verify_sigv4(request, secret, region, service)
