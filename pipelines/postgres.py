"""A PostgreSQL cluster the project owns, in one folder: the tracking server's database.

``initdb`` once into ``<folder>/data`` (password auth, a generated password kept in a 0600
pgpass file), then ``pg_ctl`` listening on 127.0.0.1 only, on a free port chosen at each start,
without a Unix socket (its path would be bound by the folder's length). PostgreSQL refuses to
run as root, so as root its programs run as the ``postgres`` user, who then owns the folder.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from components.errors import PipelineError
from pipelines.workers import free_port

DEFAULT_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "mlflow"
"""The database role the tracking server logs in as (the cluster's superuser)."""
SYSTEM_USER = "postgres"
"""Who runs the server when we are root (Debian's postgresql package creates this user)."""


class PostgresError(PipelineError):
    """The cluster cannot be created, started or reached."""


class Cluster:
    """The cluster in ``folder`` run with the programs in ``bin_dir``."""

    def __init__(self, folder: Path, bin_dir: Path = DEFAULT_BIN):
        self.folder = folder.resolve()
        self.bin_dir = bin_dir
        self.data_dir = self.folder / "data"
        self.pgpass = self.folder / "pgpass"
        """libpq's password file: mlflow's psycopg reads it through ``PGPASSFILE``."""

    def start(self) -> int:
        """Create the cluster if there is none, start it unless it runs; returns its port."""
        if (port := self.port()) is not None:
            return port
        self._require_programs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._create()
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
        log_file = self.folder / "postgres.log"
        self._run("pg_ctl", "-D", self.data_dir, "-l", log_file, "-w", "-o", options, "start")
        return port

    def stop(self) -> None:
        """Shut down cleanly (``-m fast``: ends open sessions, no recovery at the next start)."""
        if self.port() is not None:
            self._run("pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop")

    def port(self) -> int | None:
        """The port it listens on, None when it does not run (its postmaster.pid is stale)."""
        try:
            pid_file = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        try:
            os.kill(int(pid_file[0]), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # it runs, as another user
        return int(pid_file[3])

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port(),
            user=USER,
            password=self.pgpass.read_text().strip().rsplit(":", 1)[1],
            dbname="postgres",
            autocommit=True,
        ) as connection:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if not connection.execute(query, (name,)).fetchone():
                connection.execute(f'CREATE DATABASE "{name}"')

    def _create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)  # what a failed initdb left
        password = secrets.token_urlsafe(24)
        password_file = self.folder / "initdb-password"
        password_file.write_text(password)
        password_file.chmod(0o600)
        self._hand_over(self.folder, password_file)
        try:
            self._run(
                *("initdb", "-D", self.data_dir, "-U", USER, "--pwfile", password_file),
                *("--auth", "scram-sha-256", "--encoding", "UTF8", "--no-instructions"),
            )
        finally:
            password_file.unlink()
        self.pgpass.write_text(f"127.0.0.1:*:*:{USER}:{password}\n")
        self.pgpass.chmod(0o600)  # libpq ignores a password file others can read

    def _hand_over(self, *paths: Path) -> None:
        """As root: give ``paths`` to the system user, and check it can reach them."""
        if os.geteuid() != 0:
            return
        try:
            account = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresError(
                f"PostgreSQL does not run as root and there is no '{SYSTEM_USER}' user to run it "
                "as: apt-get install postgresql creates one"
            ) from None
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)
        if subprocess.run(self._as_system_user(["test", "-w", str(self.folder)])).returncode:
            raise PostgresError(
                f"PostgreSQL runs as '{SYSTEM_USER}' (not root), who cannot reach {self.folder}: "
                "choose a folder every user can enter (its parents need the x permission)"
            )

    def _require_programs(self) -> None:
        missing = [name for name in ("initdb", "pg_ctl") if not (self.bin_dir / name).is_file()]
        if missing:
            raise PostgresError(
                f"PostgreSQL's server programs ({', '.join(missing)}) are not in {self.bin_dir}: "
                "install them (apt-get install postgresql) or point --postgres-bin at them"
            )

    def _run(self, program: str, *arguments: object) -> None:
        command = self._as_system_user([str(self.bin_dir / program), *map(str, arguments)])
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if result.returncode:
            raise PostgresError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()[-2000:]}; "
                f"see also {self.folder / 'postgres.log'}"
            )

    def _as_system_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", SYSTEM_USER, "--", *command] if os.geteuid() == 0 else command
