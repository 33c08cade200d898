"""groot_keys: create a CurveZMQ certificate pair for groot_server or groot_client.

    groot_keys server DIR            -> DIR/server.key (public), DIR/server.key_secret (0600)
    groot_keys client DIR [--name N] -> DIR/N.key, DIR/N.key_secret (N defaults to "client")

Certificates are ZeroMQ's own format (zmq.auth.create_certificates). The secret file is
written with owner-only permissions from the start (umask 077, so it is never readable by
others even for a moment), DIR is created 0700 when missing, and existing files are never
overwritten. The tool prints which file goes where and the exact parameter values.
"""

from __future__ import annotations

import argparse
import os
import re
import sys


def create_pair(role: str, directory: str, name: str = "") -> tuple[str, str]:
    """Create NAME.key / NAME.key_secret in `directory`; returns (public, secret) absolute paths."""
    import zmq.auth

    name = name or role
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise ValueError(f"--name must be letters, digits, '_', '-' or '.', got {name!r}")
    directory = os.path.abspath(os.path.expanduser(directory))
    public, secret = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.key_secret")
    for path in (public, secret):
        if os.path.lexists(path):
            raise FileExistsError(f"{path} already exists; refusing to overwrite a certificate (move it away first)")
    old_umask = os.umask(0o077)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        made_public, made_secret = zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old_umask)
    os.chmod(made_secret, 0o600)
    os.chmod(made_public, 0o644)  # public: anyone may read it, only the owner writes it
    return os.path.abspath(made_public), os.path.abspath(made_secret)


def instructions(role: str, public: str, secret: str) -> str:
    base = os.path.basename(public)
    if role == "server":
        return "\n".join([
            f"created {public} (public) and {secret} (secret, mode 0600)",
            "",
            "On the GPU PC (groot_server), keep the secret file here:",
            f"  -p transport:=tcp -p curve_secret_key:={secret} -p curve_allowed_clients:=<DIR of client .key files>",
            f"  (launch: server_curve_secret_key:={secret} curve_allowed_clients:=<DIR>)",
            f"Copy {base} (public, never the .key_secret) to every robot and pin it there:",
            f"  -p curve_server_key:=<where you put {base}>   (launch: curve_server_key:=<path>)",
        ])
    return "\n".join([
        f"created {public} (public) and {secret} (secret, mode 0600)",
        "",
        "On the robot (groot_client), keep the secret file here:",
        f"  -p transport:=tcp -p curve_secret_key:={secret} -p curve_server_key:=<path of the server's server.key>",
        f"  (launch: client_curve_secret_key:={secret} curve_server_key:=<path>)",
        f"Copy {base} (public, never the .key_secret) into the server's curve_allowed_clients directory",
        "and restart groot_server: it loads the allow-list at start.",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="groot_keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=("server", "client"), help="whose certificate pair to create")
    parser.add_argument("directory", help="where to write NAME.key and NAME.key_secret (created 0700 if missing)")
    parser.add_argument("--name", default="", help="file name stem (default: the role); one per robot, e.g. alfie1")
    args = parser.parse_args(argv)
    try:
        public, secret = create_pair(args.role, args.directory, args.name)
    except (ValueError, OSError) as exc:
        print(f"groot_keys: {exc}", file=sys.stderr)
        return 1
    print(instructions(args.role, public, secret))
    return 0


if __name__ == "__main__":
    sys.exit(main())
