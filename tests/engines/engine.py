#!/usr/bin/env python3
"""Runs kpic's exported SQL on a real engine and dumps the output tables.

Run it with the virtualenv's python that tests/engines/setup.sh prints
(KPIC_PYTHON):

    engine.py postgres|spark|clickhouse WORKDIR [WORKDIR...]
    engine.py parse DIALECT FILE [FILE...]

Engine mode. Each WORKDIR holds a manifest.json:

    {"tables":  [{"name": "analytics.orders", "parquet": "/abs/orders.parquet"}],
     "script":  "build.sql",                       (relative to WORKDIR)
     "outputs": ["kpi_results", "kpi_metrics", ...]}

For each workdir, in a clean namespace, the driver loads every table from its
parquet file (keeping the column types; "schema.table" creates the schema
first), runs the script, and writes WORKDIR/out/<output>.json as

    {"columns": [...], "types": [...engine type names...], "rows": [[...], ...]}

with values normalised: NULL -> null, date -> "YYYY-MM-DD", timestamp ->
"YYYY-MM-DD HH:MM:SS" (".ffffff" appended only when there are microseconds;
tz-aware values are converted to UTC), ints/decimals/floats -> JSON numbers
(integral decimals exactly, others as doubles), NaN/inf/-inf -> the strings
"NaN", "inf", "-inf", booleans -> true/false (a ClickHouse UInt8 stays a number).
A workdir that fails gets WORKDIR/out/error.txt (also printed to stderr) and the
driver goes on with the next one. Exit status: 0 when every workdir succeeded,
1 otherwise, 2 on bad usage.

  postgres    DSN from --dsn or $KPIC_PG_DSN. One fresh database per workdir
              (dropped first if it exists; dropped again after a success, kept
              after a failure for debugging). Tables: CREATE TABLE with mapped
              types + COPY. The script runs whole in one execute() on an
              autocommit connection (it has its own BEGIN/COMMIT).
  spark       One local[2] SparkSession for all workdirs (in-memory catalog,
              warehouse under a temp dir, session time zone UTC). Before each
              workdir every non-default database and every table/view in
              `default` is dropped. Tables: spark.read.parquet + saveAsTable
              (managed parquet tables). Script: split into statements, run one
              by one with spark.sql().
  clickhouse  chdb (embedded ClickHouse). A new Session in a new temp dir per
              workdir, session_timezone = 'UTC'. Tables: MergeTree with the
              parquet's types, Nullable(...) only for columns that hold NULLs,
              filled from file(..., Parquet). Script: split and run one by one.

The statement splitter understands '...' strings (with '' and backslash
escapes), "..." and `...` identifiers, -- and /* */ comments.

Parse mode: parses each FILE with sqlglot (read=DIALECT, error_level=RAISE) and
fails (exit 1, naming the file and statement) when sqlglot raises, logs any
warning (e.g. "Falling back to parsing as a 'Command'"), or produces an
exp.Command node anywhere in a statement's tree.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import uuid

ENGINES = ("postgres", "spark", "clickhouse")
DEFAULT_PG_DSN = "host=127.0.0.1 port=54329 user=postgres dbname=postgres"


def log(msg: str) -> None:
    print(f"[engine] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Statement splitting
# --------------------------------------------------------------------------


class Statement:
    """One statement of a script: its text (comments kept), 1-based index, the
    1-based line and the 0-based offset where its first non-comment token
    starts."""

    def __init__(self, index: int, text: str, line: int, offset: int, head: str):
        self.index = index
        self.text = text
        self.line = line
        self.offset = offset
        self.head = head  # the script's line from the first token on

    def first_line(self) -> str:
        return self.head.strip()[:200]

    def describe(self) -> str:
        return f"statement {self.index} (line {self.line}): {self.first_line()}"


def split_sql(text: str, backslash_escapes: bool = True) -> list[Statement]:
    """Splits a script on `;` outside strings, quoted identifiers and comments.
    Empty (whitespace/comment-only) statements are skipped."""
    out: list[Statement] = []
    buf: list[str] = []
    start = None  # (line, offset) of the first code char of the current statement
    line = 1
    i, n = 0, len(text)

    def flush():
        nonlocal buf, start
        if start is not None:
            eol = text.find("\n", start[1])
            head = text[start[1] : n if eol < 0 else eol]
            out.append(Statement(len(out) + 1, "".join(buf).strip(), start[0], start[1], head))
        buf = []
        start = None

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":  # line comment
            j = text.find("\n", i)
            j = n if j < 0 else j
            buf.append(text[i:j])
            i = j
            continue
        if c == "/" and nxt == "*":  # block comment (nesting allowed)
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            chunk = text[i:j]
            buf.append(chunk)
            line += chunk.count("\n")
            i = j
            continue
        if c in ("'", '"', "`"):
            if start is None:
                start = (line, i)
            j = i + 1
            while j < n:
                d = text[j]
                if d == "\\" and backslash_escapes and c == "'":
                    j += 2
                    continue
                if d == c:
                    if j + 1 < n and text[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
            chunk = text[i:j]
            buf.append(chunk)
            line += chunk.count("\n")
            i = j
            continue
        if c == ";":
            flush()
            i += 1
            continue
        if c == "\n":
            line += 1
        elif not c.isspace() and start is None:
            start = (line, i)
        buf.append(c)
        i += 1
    flush()
    return out


def statement_at(text: str, pos: int, backslash_escapes: bool) -> Statement | None:
    """The statement containing character offset `pos` (0-based) of `text`."""
    found = None
    for st in split_sql(text, backslash_escapes):
        if st.offset <= pos:
            found = st
    return found


# --------------------------------------------------------------------------
# Value normalisation
# --------------------------------------------------------------------------


def fmt_timestamp(v: dt.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    s = v.strftime("%Y-%m-%d %H:%M:%S")
    if v.microsecond:
        s += f".{v.microsecond:06d}"
    return s


def norm_float(f: float):
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def normalize(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return norm_float(v)
    if isinstance(v, decimal.Decimal):
        if v.is_nan():
            return "NaN"
        if v.is_infinite():
            return "inf" if v > 0 else "-inf"
        if v == v.to_integral_value():
            return int(v)
        return float(v)
    if isinstance(v, dt.datetime):  # before date: datetime is a date
        return fmt_timestamp(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return str(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", errors="replace")
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [normalize(x) for x in v]
    if isinstance(v, dict):
        return {str(k): normalize(x) for k, x in v.items()}
    if hasattr(v, "item"):  # numpy scalar
        return normalize(v.item())
    return str(v)


def write_output(out_dir: str, name: str, columns, types, rows) -> None:
    doc = {
        "columns": list(columns),
        "types": list(types),
        "rows": [[normalize(v) for v in row] for row in rows],
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, allow_nan=False)
        f.write("\n")


# --------------------------------------------------------------------------
# Workdir handling
# --------------------------------------------------------------------------


class StepError(Exception):
    """A failure with a message meant for error.txt."""


class Workdir:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        mpath = os.path.join(self.path, "manifest.json")
        try:
            with open(mpath, encoding="utf-8") as f:
                m = json.load(f)
        except (OSError, ValueError) as e:
            raise StepError(f"cannot read {mpath}: {e}") from None
        try:
            self.tables = [(t["name"], t["parquet"]) for t in m.get("tables", [])]
            self.script_path = os.path.join(self.path, m["script"])
            self.outputs = list(m.get("outputs", []))
        except (KeyError, TypeError) as e:
            raise StepError(f"bad manifest {mpath}: missing {e}") from None
        for name, pq in self.tables:
            if not os.path.isfile(pq):
                raise StepError(f"table {name}: parquet file not found: {pq}")
        try:
            with open(self.script_path, encoding="utf-8") as f:
                self.script = f.read()
        except OSError as e:
            raise StepError(f"cannot read script: {e}") from None
        self.out_dir = os.path.join(self.path, "out")

    def prepare_out(self) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        for name in ["error.txt"] + [f"{o}.json" for o in self.outputs]:
            p = os.path.join(self.out_dir, name)
            if os.path.exists(p):
                os.remove(p)


def split_name(name: str) -> tuple[str | None, str]:
    if "." in name:
        schema, table = name.split(".", 1)
        return schema, table
    return None, name


def read_parquet(path: str):
    import pyarrow.parquet as pq

    return pq.read_table(path)


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


class Postgres:
    name = "postgres"

    def __init__(self, dsn: str):
        import psycopg

        self.psycopg = psycopg
        self.dsn = dsn
        # Fail early (and once) when the server is not there.
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as c:
            self.version = c.execute("select version()").fetchone()[0]
        log(f"postgres: {self.version}")

    @staticmethod
    def pg_type(t) -> str:
        import pyarrow as pa
        import pyarrow.types as T

        if T.is_string(t) or T.is_large_string(t):
            return "text"
        if T.is_boolean(t):
            return "boolean"
        if T.is_int8(t) or T.is_int16(t) or T.is_uint8(t):
            return "smallint"
        if T.is_int32(t) or T.is_uint16(t):
            return "integer"
        if T.is_int64(t) or T.is_uint32(t):
            return "bigint"
        if T.is_uint64(t):
            return "numeric(20,0)"
        if T.is_float16(t) or T.is_float32(t):
            return "real"
        if T.is_float64(t):
            return "double precision"
        if T.is_decimal(t):
            return f"numeric({t.precision},{t.scale})"
        if T.is_date(t):
            return "date"
        if T.is_timestamp(t):
            return "timestamptz" if t.tz else "timestamp"
        if T.is_time(t):
            return "time"
        if T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t):
            return "bytea"
        if T.is_null(t):
            return "text"
        if isinstance(t, pa.DictionaryType):
            return Postgres.pg_type(t.value_type)
        raise StepError(f"no PostgreSQL type for parquet type {t}")

    def db_name(self, wd: Workdir) -> str:
        base = re.sub(r"[^a-z0-9_]+", "_", os.path.basename(wd.path).lower()).strip("_")
        h = hashlib.sha1(wd.path.encode()).hexdigest()[:8]
        return f"kpic_{base[:40]}_{h}"

    def run(self, wd: Workdir) -> None:
        psycopg = self.psycopg
        from psycopg import sql

        db = self.db_name(wd)
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(db)))
        ok = False
        try:
            dsn = psycopg.conninfo.make_conninfo(self.dsn, dbname=db, options="-c timezone=UTC")
            with psycopg.connect(dsn, autocommit=True) as conn:
                for name, path in wd.tables:
                    self.load(conn, name, path)
                self.run_script(conn, wd.script)
                for out in wd.outputs:
                    try:
                        cur = conn.execute(f"SELECT * FROM {out}")
                        rows = cur.fetchall()
                    except psycopg.Error as e:
                        raise StepError(f"reading output {out}: {e}") from None
                    cols = [d.name for d in cur.description]
                    types = [d.type_display for d in cur.description]
                    write_output(wd.out_dir, out, cols, types, rows)
            ok = True
        finally:
            if ok and not os.environ.get("KPIC_KEEP_DB"):
                with psycopg.connect(self.dsn, autocommit=True) as admin:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            elif not ok:
                log(f"postgres: database {db} kept for debugging")

    def load(self, conn, name: str, path: str) -> None:
        from psycopg import sql

        schema, table = split_name(name)
        tbl = read_parquet(path)
        ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        if schema:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(self.pg_type(f.type)))
            for f in tbl.schema
        )
        try:
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, cols))
            colnames = sql.SQL(", ").join(sql.Identifier(f.name) for f in tbl.schema)
            with conn.cursor() as cur:
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(ident, colnames)) as cp:
                    for batch in tbl.to_batches(10_000):
                        columns = [c.to_pylist() for c in batch.columns]
                        for row in zip(*columns):
                            cp.write_row(row)
        except self.psycopg.Error as e:
            raise StepError(f"loading table {name} from {path}: {e}") from None

    def run_script(self, conn, script: str) -> None:
        try:
            # No parameters: psycopg sends it with the simple query protocol,
            # so the many statements (and the script's BEGIN/COMMIT) run as is.
            conn.execute(script)
        except self.psycopg.Error as e:
            where = ""
            diag = getattr(e, "diag", None)
            pos = getattr(diag, "statement_position", None) if diag else None
            if pos:
                try:
                    off = int(pos) - 1
                    lineno = script.count("\n", 0, off) + 1
                    st = statement_at(script, off, backslash_escapes=False)
                    where = f"at line {lineno}"
                    if st:
                        where += f", in {st.describe()}"
                except ValueError:
                    pass
            msg = str(e).strip()
            raise StepError(f"script failed {where}:\n{msg}" if where else f"script failed:\n{msg}") from None

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------
# Spark
# --------------------------------------------------------------------------

LOG4J2 = """\
# written by tests/engines/engine.py: errors only, to stderr
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex{3}
# query failures are reported by the driver; the executor's copies are noise
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tsm.name = org.apache.spark.scheduler.TaskSetManager
logger.tsm.level = off
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = off
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = off
logger.writer.name = org.apache.spark.sql.execution.datasources
logger.writer.level = off
"""


class Spark:
    name = "spark"

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="kpic-spark-")
        log4j = os.path.join(self.tmp, "log4j2.properties")
        with open(log4j, "w") as f:
            f.write(LOG4J2)
        self.warehouse = os.path.join(self.tmp, "warehouse")
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ["PYSPARK_PYTHON"] = sys.executable
        jopts = (
            f"-Dlog4j2.configurationFile=file:{log4j} -Dderby.system.home={self.tmp}/derby "
            f"-Duser.timezone=UTC"
        )
        from pyspark.sql import SparkSession

        # The failing-query context logger of PySpark prints a JSON dump of
        # every caught exception; the driver reports errors itself.
        try:
            from pyspark.logger import PySparkLogger

            for lname in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
                PySparkLogger.getLogger(lname).disabled = True
        except ImportError:
            pass

        t0 = time.time()
        self.session_conf = {
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.session.timeZone": "UTC",
        }
        b = (
            SparkSession.builder.master("local[2]")
            .appName("kpic-engine-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.default.parallelism", "2")
            .config("spark.driver.memory", "2g")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.warehouse.dir", self.warehouse)
            .config("spark.local.dir", os.path.join(self.tmp, "local"))
            .config("spark.sql.catalogImplementation", "in-memory")
            .config("spark.driver.extraJavaOptions", jopts)
            .config("spark.executor.extraJavaOptions", jopts)
            .config("spark.log.structuredLogging.enabled", "false")
        )
        for k, v in self.session_conf.items():
            b = b.config(k, v)
        self.spark = b.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")
        self.version = self.spark.version
        log(f"spark {self.version} started in {time.time() - t0:.1f}s "
            f"(ansi={self.spark.conf.get('spark.sql.ansi.enabled')})")

    def reset(self) -> None:
        s = self.spark
        s.catalog.clearCache()
        s.sql("RESET")  # runtime SET values back to the session's start values
        for k, v in self.session_conf.items():
            s.conf.set(k, v)
        s.sql("USE default")
        for row in s.sql("SHOW DATABASES").collect():
            db = row[0]
            if db != "default":
                s.sql(f"DROP DATABASE IF EXISTS `{db}` CASCADE")
        for t in s.catalog.listTables("default"):
            if t.isTemporary:
                s.catalog.dropTempView(t.name)
            elif t.tableType == "VIEW":
                s.sql(f"DROP VIEW IF EXISTS `default`.`{t.name}`")
            else:
                s.sql(f"DROP TABLE IF EXISTS `default`.`{t.name}`")
        for t in s.catalog.listTables("global_temp") if self._has_global_temp() else []:
            s.catalog.dropGlobalTempView(t.name)
        # Leftover managed-table directories would make CTAS fail with
        # LOCATION_ALREADY_EXISTS.
        if os.path.isdir(self.warehouse):
            for entry in os.listdir(self.warehouse):
                shutil.rmtree(os.path.join(self.warehouse, entry), ignore_errors=True)

    def _has_global_temp(self) -> bool:
        try:
            self.spark.catalog.listTables("global_temp")
            return True
        except Exception:
            return False

    @staticmethod
    def err(e: BaseException) -> str:
        msg = str(e).strip()
        # Drop the JVM stack trace that some exceptions carry.
        msg = msg.split("\n\tat ", 1)[0]
        lines = [l for l in msg.splitlines() if not l.startswith("JVM stacktrace:")]
        return "\n".join(lines)[:4000]

    def run(self, wd: Workdir) -> None:
        self.reset()
        s = self.spark
        for name, path in wd.tables:
            schema, table = split_name(name)
            try:
                if schema:
                    s.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
                full = f"`{schema}`.`{table}`" if schema else f"`{table}`"
                s.read.parquet(path).write.format("parquet").saveAsTable(full)
            except Exception as e:
                raise StepError(f"loading table {name} from {path}: {self.err(e)}") from None
        for st in split_sql(wd.script):
            try:
                s.sql(st.text)
            except Exception as e:
                raise StepError(f"script failed in {st.describe()}:\n{self.err(e)}") from None
        for out in wd.outputs:
            try:
                df = s.sql(f"SELECT * FROM {out}")
                rows = df.collect()
            except Exception as e:
                raise StepError(f"reading output {out}: {self.err(e)}") from None
            cols = [f.name for f in df.schema.fields]
            types = [f.dataType.simpleString() for f in df.schema.fields]
            write_output(wd.out_dir, out, cols, types, [tuple(r) for r in rows])

    def close(self) -> None:
        try:
            self.spark.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# ClickHouse (chdb)
# --------------------------------------------------------------------------


def ch_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def ch_string(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ch_base_type(t: str) -> str:
    """Type name without Nullable(...)/LowCardinality(...) wrappers."""
    while True:
        m = re.fullmatch(r"(?:Nullable|LowCardinality)\((.*)\)", t)
        if not m:
            return t
        t = m.group(1)


class ClickHouse:
    name = "clickhouse"

    def __init__(self):
        import chdb
        from chdb import session

        self.session_mod = session
        self.chdb_version = chdb.__version__
        self.sess = None
        self.tmp = None
        self._open()
        self.version = self.json("SELECT version()")[0][0]
        self._close()
        log(f"chdb {self.chdb_version} (ClickHouse {self.version})")

    def _open(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="kpic-chdb-")
        self.sess = self.session_mod.Session(self.tmp)
        self.sess.query("SET session_timezone = 'UTC'")

    def _close(self) -> None:
        if self.sess is not None:
            try:
                self.sess.close()
            except Exception:
                pass
            self.sess = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def json(self, q: str):
        r = self.sess.query(q, "JSONCompact")
        txt = r.data() if hasattr(r, "data") else str(r)
        return json.loads(txt)["data"] if txt.strip() else []

    def arrow(self, q: str):
        import pyarrow as pa

        r = self.sess.query(q, "Arrow")
        return pa.ipc.open_file(pa.BufferReader(r.bytes())).read_all()

    @staticmethod
    def err(e: BaseException) -> str:
        return str(e).strip()[:4000]

    def run(self, wd: Workdir) -> None:
        self._open()
        try:
            self._run(wd)
        finally:
            self._close()

    def _run(self, wd: Workdir) -> None:
        for name, path in wd.tables:
            try:
                self.load(name, path)
            except StepError:
                raise
            except Exception as e:
                raise StepError(f"loading table {name} from {path}: {self.err(e)}") from None
        for st in split_sql(wd.script):
            try:
                self.sess.query(st.text)
            except Exception as e:
                raise StepError(f"script failed in {st.describe()}:\n{self.err(e)}") from None
        for out in wd.outputs:
            try:
                desc = self.json(f"DESCRIBE TABLE {out}")
                cols = [d[0] for d in desc]
                types = [d[1] for d in desc]
                # Types that Arrow output renders badly are converted in SQL.
                sel = []
                for c, t in zip(cols, types):
                    base = ch_base_type(t)
                    if re.match(r"(DateTime\b(?!64)|Enum|U?Int(128|256)\b|UUID|IPv[46])", base):
                        sel.append(f"toString({ch_ident(c)}) AS {ch_ident(c)}")
                    else:
                        sel.append(ch_ident(c))
                tbl = self.arrow(f"SELECT {', '.join(sel) or '*'} FROM {out}")
            except Exception as e:
                raise StepError(f"reading output {out}: {self.err(e)}") from None
            columns = [c.to_pylist() for c in tbl.columns]
            for k, t in enumerate(types):
                if re.match(r"U?Int(128|256)\b", ch_base_type(t)):
                    columns[k] = [None if v is None else int(v) for v in columns[k]]
            rows = list(zip(*columns)) if columns else []
            write_output(wd.out_dir, out, cols, types, rows)

    def load(self, name: str, path: str) -> None:
        schema, table = split_name(name)
        if schema:
            self.sess.query(f"CREATE DATABASE IF NOT EXISTS {ch_ident(schema)}")
        full = f"{ch_ident(schema)}.{ch_ident(table)}" if schema else ch_ident(table)
        src = f"file({ch_string(os.path.abspath(path))}, Parquet)"
        inferred = self.json(f"DESCRIBE {src} SETTINGS schema_inference_make_columns_nullable = 0")
        pq = read_parquet(path)
        nulls = {f.name: pq.column(i).null_count for i, f in enumerate(pq.schema)}
        cols = []
        for row in inferred:
            cname, ctype = row[0], row[1]
            if nulls.get(cname, 1) > 0 and not ctype.startswith(("Nullable(", "Array(", "Map(", "Tuple(")):
                ctype = f"Nullable({ctype})"
            cols.append(f"{ch_ident(cname)} {ctype}")
        self.sess.query(f"CREATE TABLE {full} ({', '.join(cols)}) ENGINE = MergeTree ORDER BY tuple()")
        self.sess.query(f"INSERT INTO {full} SELECT * FROM {src}")

    def close(self) -> None:
        self._close()


# --------------------------------------------------------------------------
# Parse mode (sqlglot)
# --------------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(record.getMessage())


def parse_files(dialect: str, files: list[str]) -> int:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, ParseError

    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except Exception as e:
        log(f"unknown sqlglot dialect {dialect!r}: {e}")
        return 2
    logger = logging.getLogger("sqlglot")
    cap = _Capture()
    logger.addHandler(cap)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    failed = 0
    for path in files:
        problems: list[str] = []
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            log(f"FAIL {path}: {e}")
            failed += 1
            continue
        cap.records.clear()
        stmts = split_sql(text, backslash_escapes=dialect not in ("postgres", "redshift", "duckdb", "trino"))
        trees = []
        try:
            trees = sqlglot.parse(text, read=dialect, error_level=ErrorLevel.RAISE)
        except ParseError as e:
            for err in e.errors or [{"description": str(e)}]:
                line = err.get("line")
                st = None
                if line is not None:
                    st = next((s for s in reversed(stmts) if s.line <= line), None)
                where = f"line {line}, col {err.get('col')}" if line is not None else "?"
                ctx = (err.get("start_context") or "") + (err.get("highlight") or "")
                problems.append(
                    f"parse error at {where}"
                    + (f" in {st.describe()}" if st else "")
                    + f": {err.get('description')}"
                    + (f"\n    near: {ctx.strip()[-160:]}" if ctx.strip() else "")
                )
        except Exception as e:  # sqlglot internals (TokenError, ...)
            problems.append(f"sqlglot raised {type(e).__name__}: {e}")
        for w in cap.records:
            problems.append(f"sqlglot warning: {w}")
        for k, tree in enumerate(t for t in trees if t is not None):
            cmds = [tree] if isinstance(tree, exp.Command) else list(tree.find_all(exp.Command))
            for cmd in cmds:
                what = f"{cmd.this} {cmd.expression.sql() if isinstance(cmd.expression, exp.Expression) else (cmd.expression or '')}".strip()
                where = stmts[k].describe() if k < len(stmts) else f"statement {k + 1}"
                problems.append(f"parsed as exp.Command (unsupported by sqlglot) in {where}: {what[:160]}")
        if problems:
            failed += 1
            log(f"FAIL {path} (read={dialect}):")
            for p in problems:
                print("  " + p.replace("\n", "\n  "), file=sys.stderr)
        else:
            log(f"ok   {path} (read={dialect}, {len([t for t in trees if t is not None])} statements)")
    return 1 if failed else 0


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


USAGE = """usage:
  engine.py postgres|spark|clickhouse [--dsn DSN] WORKDIR [WORKDIR...]
  engine.py parse DIALECT FILE [FILE...]"""


def main(argv: list[str]) -> int:
    os.environ["TZ"] = "UTC"
    if hasattr(time, "tzset"):
        time.tzset()
    if len(argv) >= 1 and argv[0] in ("-h", "--help"):
        print(__doc__)
        print(USAGE)
        return 0
    if len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    mode, rest = argv[0], argv[1:]
    if mode == "parse":
        if len(rest) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        return parse_files(rest[0], rest[1:])
    if mode not in ENGINES:
        print(f"unknown engine {mode!r}\n{USAGE}", file=sys.stderr)
        return 2
    dsn = os.environ.get("KPIC_PG_DSN") or DEFAULT_PG_DSN
    if rest and rest[0] == "--dsn":
        if len(rest) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        dsn, rest = rest[1], rest[2:]
    if not rest:
        print(USAGE, file=sys.stderr)
        return 2

    def fail_all(msg: str) -> int:
        log(msg)
        for w in rest:
            try:
                os.makedirs(os.path.join(w, "out"), exist_ok=True)
                with open(os.path.join(w, "out", "error.txt"), "w") as f:
                    f.write(msg + "\n")
            except OSError:
                pass
        return 1

    try:
        if mode == "postgres":
            engine = Postgres(dsn)
        elif mode == "spark":
            engine = Spark()
        else:
            engine = ClickHouse()
    except Exception as e:
        return fail_all(f"{mode}: engine could not start: {type(e).__name__}: {e}")

    failures = 0
    try:
        for w in rest:
            t0 = time.time()
            wd = None
            try:
                wd = Workdir(w)
                wd.prepare_out()
                engine.run(wd)
                log(f"{mode}: ok   {w} ({time.time() - t0:.1f}s)")
            except Exception as e:
                failures += 1
                if isinstance(e, StepError):
                    msg = str(e)
                else:
                    msg = f"internal error: {type(e).__name__}: {e}\n{traceback.format_exc()}"
                msg = f"{mode}: {msg}"
                log(f"{mode}: FAIL {w} ({time.time() - t0:.1f}s)\n{msg}")
                try:
                    out_dir = wd.out_dir if wd else os.path.join(w, "out")
                    os.makedirs(out_dir, exist_ok=True)
                    with open(os.path.join(out_dir, "error.txt"), "w", encoding="utf-8") as f:
                        f.write(msg + "\n")
                except OSError as e2:
                    log(f"cannot write error.txt in {w}: {e2}")
    finally:
        try:
            engine.close()
        except Exception as e:
            log(f"{mode}: error while closing: {e}")
    log(f"{mode}: {len(rest) - failures} ok, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
