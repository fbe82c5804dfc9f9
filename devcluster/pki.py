"""The throwaway cluster's credentials, made with the openssl command line: one CA, the API server's serving
and kubelet-client certificates, the admin's client certificate, the service-account key pair, and static
tokens for the components (kube-apiserver --token-auth-file), each with the user and groups a kubeadm cluster
gives it, so RBAC's bootstrap bindings and the Node authorizer apply as on a real cluster."""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DAYS = "30"


@dataclass(frozen=True)
class TokenUser:
    token: str
    user: str
    groups: tuple[str, ...] = ()


def _openssl(*args: str) -> None:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])}: {r.stderr.strip()}")


def make_ca(pki: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki / "ca.key"),
             "-out", str(pki / "ca.crt"), "-days", DAYS, "-subj", "/CN=multus-cleanup-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def issue(pki: Path, name: str, cn: str, *, org: str = "", sans: tuple[str, ...] = (),
          server: bool = False) -> None:
    """pki/NAME.crt and NAME.key, signed by the CA: a client certificate, or a server one for `sans`."""
    subject = f"/CN={cn}" + (f"/O={org}" if org else "")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki / f"{name}.key"),
             "-out", str(pki / f"{name}.csr"), "-subj", subject)
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
           f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}"]
    if sans:
        ext.append("subjectAltName=" + ",".join(
            f"IP:{s}" if s.replace(".", "").isdigit() else f"DNS:{s}" for s in sans))
    with tempfile.NamedTemporaryFile("w", suffix=".ext", dir=pki) as extfile:
        extfile.write("\n".join(ext) + "\n")
        extfile.flush()
        _openssl("x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / "ca.crt"),
                 "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-out", str(pki / f"{name}.crt"),
                 "-days", DAYS, "-extfile", extfile.name)
    (pki / f"{name}.csr").unlink()


def make_service_account_keys(pki: Path) -> None:
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
    _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def new_token(user: str, *groups: str) -> TokenUser:
    return TokenUser(secrets.token_hex(16), user, groups)


def write_token_file(path: Path, users: list[TokenUser]) -> None:
    """kube-apiserver's --token-auth-file: token,user,uid,"group1,group2"."""
    path.write_text("".join(f'{u.token},{u.user},{u.user},"{",".join(u.groups)}"\n' for u in users))
    path.chmod(0o600)


def kubeconfig(server: str, ca: Path, *, token: str = "", cert: Path | None = None, key: Path | None = None,
               user: str = "user") -> str:
    """A kubeconfig with one cluster, one user and one current context (JSON is valid YAML)."""
    creds: dict[str, str] = {"token": token} if token else {
        "client-certificate": str(cert), "client-key": str(key)}
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "multus-cleanup-test",
        "clusters": [{"name": "multus-cleanup-test", "cluster": {"server": server,
                                                                 "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": "multus-cleanup-test",
                      "context": {"cluster": "multus-cleanup-test", "user": user}}],
    }, indent=2) + "\n"
