# The Python runtime, imported by bootstrap.py: loads the function's
# handler, then serves invocations on a Unix socket (frames: 4-byte
# big-endian length + JSON).
#
# Started as `/usr/bin/python3 -I -S bootstrap.py` with the environment of the
# "Runtime launch" contract (FAAS_SOCKET, FAAS_HANDLER, FAAS_TASK_ROOT, ...).
# Standard library only, and only the parts that cost nothing at start-up:
# the low-level _socket and _json modules instead of socket and json (which
# pull in enum, re, functools ...: ~10 ms). Anything else (traceback,
# logging) is imported on the paths that need it.
#
# Protocol (one connection at a time, requests answered in order):
#   {"id","ping":true}                          -> {"id","ok":true,"pong":true}
#   {"id","specialise":{"env":{..}}}  (stem cells only, once; see specialise())
#       -> {"id","ok":true,"specialised":true,"import_ms","init_error"}
#   {"id","event","deadline_ms","context":{..}} -> {"id","ok":true,"response":
#       {"statusCode","headers","body","isBase64Encoded"},"logs"}
#                                              or {"id","ok":false,"error":
#       {"type","message","trace"},"logs"}
# A frame over 8 MiB closes the connection; a malformed one gets a
# Runtime.BadRequest answer, then the connection is closed.

import sys
import time
import posix
import _socket

FRAME_MAX = 8 * 1024 * 1024


def getenv(name, default=None):
    v = posix.environ.get(name.encode())
    if v is None:
        return default
    return v.decode('utf-8', 'surrogateescape')


# --- JSON through the C accelerator only ------------------------------------

try:
    import _json

    class _ScanCtx(object):
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        memo = None

        @staticmethod
        def parse_constant(name):
            return {'NaN': float('nan'), 'Infinity': float('inf'),
                    '-Infinity': float('-inf')}[name]

    _scan = _json.make_scanner(_ScanCtx())

    def _no_default(o):
        raise TypeError('Object of type %s is not JSON serializable'
                        % type(o).__name__)

    _WS = ' \t\n\r'

    def json_loads(s):
        n = len(s)
        if n and s[0] == '{' and s[-1] == '}':
            i = 0   # the usual frame: no whitespace to skip
        else:
            i = 0
            while i < n and s[i] in _WS:
                i += 1
        try:
            obj, end = _scan(s, i)
        except (StopIteration, SystemError):
            # _json reports syntax errors through json.decoder, which it
            # only finds once imported: let the full module say what is
            # wrong (slow path, bad input only).
            import json
            json.loads(s)
            raise ValueError('invalid JSON')
        while end < n and s[end] in _WS:
            end += 1
        if end != n:
            raise ValueError('extra data after JSON at offset %d' % end)
        return obj

    # one encoder for the life of the process (no circular-reference
    # markers: a cycle ends in RecursionError, reported as a MarshalError)
    _enc = _json.make_encoder(None, _no_default, _json.encode_basestring,
                              None, ':', ',', False, False, False)

    def json_dumps(obj):
        return ''.join(_enc(obj, 0))
except ImportError:  # pragma: no cover - every CPython build has _json
    import json as _stdjson

    def json_loads(s):
        return _stdjson.loads(s)

    def json_dumps(obj):
        return _stdjson.dumps(obj, ensure_ascii=False, allow_nan=False,
                              separators=(',', ':'))


# --- per-invocation log capture ----------------------------------------------

LOG_MAX = 65536
try:
    LOG_MAX = max(0, int(getenv('FAAS_LOG_MAX', '65536')))
except ValueError:
    pass


class LogBuffer(object):
    """Bytes written during one invocation, keeping at most LOG_MAX."""

    def __init__(self, cap):
        self.cap = cap
        self.chunks = []
        self.kept = 0
        self.total = 0

    def add(self, data):
        n = len(data)
        self.total += n
        room = self.cap - self.kept
        if room <= 0:
            return
        if n > room:
            data = data[:room]
            n = room
        self.chunks.append(data)
        self.kept += n

    def text(self):
        if not self.chunks and not self.total:
            return ''
        data = b''.join(self.chunks)
        if self.total > self.cap:
            keep = self.cap
            for _ in range(3):
                nl = b'\n' if keep and data[keep - 1:keep] != b'\n' else b''
                marker = ('[faas: log truncated, %d bytes dropped]\n'
                          % (self.total - keep)).encode()
                want = max(0, self.cap - len(marker) - len(nl))
                if want == keep:
                    break
                keep = want
            # never cut a UTF-8 sequence in two
            while 0 < keep < len(data) and (data[keep] & 0xC0) == 0x80:
                keep -= 1
            data = data[:keep]
            nl = b'' if keep == 0 or data.endswith(b'\n') else b'\n'
            data += nl + ('[faas: log truncated, %d bytes dropped]\n'
                          % (self.total - keep)).encode()
        return data.decode('utf-8', 'replace')


_capture = None          # the LogBuffer of the running invocation, or None
_real_err = sys.stderr


def _out(data):
    """Route bytes: into the invocation's logs, or to the real stderr."""
    if _capture is not None:
        _capture.add(data)
        return
    try:
        _real_err.flush()
        _real_err.buffer.write(data)
        _real_err.buffer.flush()
    except (AttributeError, OSError, ValueError):
        pass


class _BinaryProxy(object):
    def __init__(self, owner):
        self._owner = owner

    def write(self, b):
        b = bytes(b)
        _out(b)
        return len(b)

    def flush(self):
        pass

    def __getattr__(self, name):
        return getattr(self._owner._real.buffer, name)


class StreamProxy(object):
    """Replaces sys.stdout / sys.stderr for the whole life of the process,
    so handlers (and logging.StreamHandlers) created at import time are also
    captured during later invocations."""

    def __init__(self, real, name):
        self._real = real
        self.name = name
        self.encoding = 'utf-8'
        self.errors = 'backslashreplace'
        self.buffer = _BinaryProxy(self)

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s'
                            % type(s).__name__)
        _out(s.encode('utf-8', 'backslashreplace'))
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False

    def seekable(self):
        return False

    def fileno(self):
        return self._real.fileno()

    @property
    def closed(self):
        return False

    def __getattr__(self, name):
        return getattr(self._real, name)


_stdout = sys.stdout = StreamProxy(sys.__stdout__ or sys.__stderr__,
                                   '<stdout>')
_stderr = sys.stderr = StreamProxy(sys.__stderr__, '<stderr>')

_logging_ready = False


def setup_logging():
    """Once the function has imported `logging`, give the root logger a
    handler on our stderr (as Lambda does), so logger.info() etc. reach the
    invocation's logs once the function lowers the level."""
    global _logging_ready
    if _logging_ready or 'logging' not in sys.modules:
        return
    _logging_ready = True
    logging = sys.modules['logging']
    try:
        root = logging.getLogger()
        if not root.handlers:
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(logging.Formatter('[%(levelname)s] %(message)s'))
            root.addHandler(h)
    except Exception:  # a half-imported or replaced logging module
        pass


# --- the handler -------------------------------------------------------------

def format_trace(e, skip=0):
    """The traceback of `e` as text, without its first `skip` frames (the
    runtime's own)."""
    import traceback
    tb = e.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return ''.join(traceback.format_exception(type(e), e, tb))


class InitError(Exception):
    def __init__(self, etype, message, trace=''):
        Exception.__init__(self, message)
        self.etype = etype
        self.message = message
        self.trace = trace


def load_handler(spec, task_root):
    """Returns the handler callable for "file.function",
    "dir/file.function" or "pkg.mod.function"; raises InitError."""
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    if '.' not in spec or spec.startswith('.') or spec.endswith('.'):
        raise InitError('Runtime.MalformedHandlerName',
                        "Bad handler '%s': expected module.function" % spec)
    modpath, fname = spec.rsplit('.', 1)
    modname = modpath.replace('/', '.')
    try:
        __import__(modname)
        mod = sys.modules[modname]
    except BaseException as e:  # SystemExit too: never exit before binding
        trace = format_trace(e, 1)
        raise InitError('Runtime.ImportModuleError',
                        "Unable to import module '%s': %s: %s"
                        % (modpath, type(e).__name__, e), trace)
    fn = getattr(mod, fname, None)
    if fn is None or not callable(fn):
        raise InitError('Runtime.HandlerNotFound',
                        "Handler '%s' missing on module '%s'"
                        % (fname, modpath))
    return fn


class LambdaContext(object):
    """The `context` argument. Every attribute is a plain field in the
    instance dict, so json.dumps(vars(context)) works."""

    def __init__(self, req_id, c, deadline_ms):
        self.aws_request_id = str(c.get('aws_request_id')
                                  or ('' if req_id is None else req_id))
        self.function_name = str(c.get('function_name')
                                 or getenv('FAAS_FUNCTION_NAME', ''))
        self.function_version = str(
            c.get('function_version')
            or getenv('FAAS_FUNCTION_VERSION', '$LATEST'))
        self.memory_limit_in_mb = str(c.get('memory_limit_in_mb')
                                      or getenv('FAAS_MEMORY_MB', '128'))
        self.invoked_function_arn = str(c.get('invoked_function_arn') or '')
        self.log_group_name = str(c.get('log_group_name') or '')
        self.log_stream_name = str(c.get('log_stream_name') or '')
        # W3C trace context of the call (docs/DESIGN.md section 5)
        self.trace_id = str(c.get('trace_id') or '')
        self.traceparent = str(c.get('traceparent') or '')
        self.identity = None
        self.client_context = None
        self.deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self.deadline_ms - time.time() * 1000))


# --- result mapping ----------------------------------------------------------

class MarshalError(Exception):
    pass


def to_json(value, what):
    try:
        return json_dumps(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        raise MarshalError('Unable to marshal %s: %s' % (what, e))


def map_result(res):
    if isinstance(res, dict) and 'statusCode' in res:
        sc = res['statusCode']
        try:
            if isinstance(sc, bool):
                raise ValueError
            sc = int(sc)
            if sc < 100 or sc > 599:
                raise ValueError
        except (TypeError, ValueError):
            raise MarshalError('statusCode must be an integer from 100 to '
                               '599, not %r' % (sc,))
        hdrs = res.get('headers') or {}
        if not isinstance(hdrs, dict):
            raise MarshalError('headers must be an object')
        headers = {}
        mv = res.get('multiValueHeaders') or {}
        if isinstance(mv, dict):
            for k, v in mv.items():
                if isinstance(v, (list, tuple)):
                    headers[str(k)] = ', '.join(str(x) for x in v)
        for k, v in hdrs.items():
            if v is not None:
                headers[str(k)] = v if isinstance(v, str) else (
                    to_json(v, 'header') if isinstance(v, (list, dict))
                    else str(v).lower() if isinstance(v, bool) else str(v))
        body = res.get('body')
        if body is None:
            body = ''
        elif not isinstance(body, str):
            body = to_json(body, 'body')
        return {'statusCode': sc, 'headers': headers, 'body': body,
                'isBase64Encoded': bool(res.get('isBase64Encoded'))}
    return {'statusCode': 200,
            'headers': {'content-type': 'application/json'},
            'body': to_json(res, 'result'), 'isBase64Encoded': False}


# --- serving -----------------------------------------------------------------

def error_answer(rid, etype, message, trace, logs):
    return {'id': rid, 'ok': False,
            'error': {'type': etype, 'message': message, 'trace': trace},
            'logs': logs}


def invoke(handler, init_error, req):
    global _capture
    rid = req.get('id')
    buf = LogBuffer(LOG_MAX)
    if init_error is not None:
        if init_error.trace:
            buf.add(init_error.trace.encode('utf-8', 'replace'))
        return error_answer(rid, init_error.etype, init_error.message,
                            init_error.trace, buf.text())
    c = req.get('context')
    if not isinstance(c, dict):
        c = {}
    dl = req.get('deadline_ms')
    if not isinstance(dl, (int, float)) or isinstance(dl, bool):
        try:
            tmo = int(getenv('FAAS_TIMEOUT_MS', '3000'))
        except ValueError:
            tmo = 3000
        dl = int(time.time() * 1000) + tmo
    ctx = LambdaContext(rid, c, dl)
    setup_logging()
    sys.stdout = _stdout    # in case the last invocation replaced them
    sys.stderr = _stderr
    _capture = buf
    try:
        try:
            res = handler(req.get('event'), ctx)
            if type(res).__name__ == 'coroutine':  # an `async def` handler
                import asyncio
                res = asyncio.run(res)
            setup_logging()
            response = map_result(res)
        finally:
            _capture = None
    except MarshalError as e:
        return error_answer(rid, 'Runtime.MarshalError', str(e), '',
                            buf.text())
    except Exception as e:
        trace = format_trace(e, 1)
        etype = type(e).__name__
        msg = str(e)
        buf.add(('[ERROR] %s: %s\n' % (etype, msg)).encode('utf-8', 'replace'))
        buf.add(trace.encode('utf-8', 'replace'))
        return error_answer(rid, etype, msg, trace, buf.text())
    return {'id': rid, 'ok': True, 'response': response, 'logs': buf.text()}


RECV_BUF = 64 * 1024

try:
    import select as _select
except ImportError:  # pragma: no cover - every CPython build has it
    _select = None


def _waiter(conn):
    """A function that sleeps until conn has data, or None. A task asleep
    in recv() is woken (for nothing) each time the agent reads an answer and
    frees this socket's send buffer; one asleep in poll() is not. But the
    freezer wakes a task in poll(), not one in recv(): so the runtime sleeps
    in poll() between calls only while the agent keeps the sandbox thawed
    (the request says "kept_thawed")."""
    if _select is None:
        return None
    p = _select.poll()
    p.register(conn.fileno(), _select.POLLIN)
    return p.poll


def send_frame(conn, obj):
    try:
        data = json_dumps(obj).encode('utf-8')
    except (TypeError, ValueError, UnicodeEncodeError) as e:
        data = json_dumps(error_answer(
            obj.get('id'), 'Runtime.MarshalError',
            'Unable to marshal the answer: %s' % e, '', '')).encode()
    if len(data) > FRAME_MAX:
        data = json_dumps(error_answer(
            obj.get('id'), 'Runtime.MarshalError',
            'The answer is %d bytes, over the %d-byte frame limit'
            % (len(data), FRAME_MAX), '', '')).encode()
    conn.sendall(len(data).to_bytes(4, 'big') + data)


def serve(conn, handler, init_error):
    """Answers the frames of one connection in order. One buffer for the
    connection's life: a request usually arrives whole in one recv_into()."""
    recv_into = conn.recv_into
    wait = _waiter(conn)
    thawed = False      # the last request said the sandbox stays thawed
    buf = bytearray(RECV_BUF)
    view = memoryview(buf)
    have = 0            # bytes of buf received and not yet consumed
    try:
        while True:
            if have == 0 and thawed and wait is not None:
                wait()
            while have < 4:
                k = recv_into(view[have:])
                if not k:
                    return
                have += k
            n = int.from_bytes(view[:4], 'big')
            if n > FRAME_MAX:
                _out(b'faas runtime: frame of %d bytes refused, closing\n'
                     % n)
                return
            end = 4 + n
            if end > len(buf):
                view.release()
                buf.extend(bytes(end - len(buf)))
                view = memoryview(buf)
            while have < end:
                k = recv_into(view[have:end])
                if not k:
                    return
                have += k
            try:
                req = json_loads(str(view[4:end], 'utf-8'))
                if not isinstance(req, dict):
                    raise ValueError('the request is not a JSON object')
            except (ValueError, UnicodeDecodeError) as e:
                send_frame(conn, error_answer(
                    None, 'Runtime.BadRequest', 'Malformed request: %s' % e,
                    '', ''))
                return
            if have > end:      # the start of the next frame
                buf[:have - end] = buf[end:have]
            have -= end
            if len(buf) > RECV_BUF and have <= RECV_BUF:
                view.release()  # give a big frame's memory back
                del buf[max(have, RECV_BUF):]
                view = memoryview(buf)
            thawed = req.get('kept_thawed') is True
            if req.get('ping'):
                send_frame(conn, {'id': req.get('id'), 'ok': True,
                                  'pong': True})
                continue
            if 'specialise' in req:
                send_frame(conn, specialise(req))
                handler, init_error = _loaded
                continue
            send_frame(conn, invoke(handler, init_error, req))
    finally:
        view.release()


def listen(path):
    """Binds under a temporary name, listens, then renames to `path`: the
    socket file appears only once connections are accepted (watchers of
    the directory see IN_MOVED_TO)."""
    for p in (path + '.new', path):
        try:
            posix.unlink(p)
        except FileNotFoundError:
            pass
    srv = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    tmp = path + '.new'
    try:
        srv.bind(tmp)
    except OSError:  # name too long for sun_path: bind the final name
        tmp = None
        srv.bind(path)
    srv.listen(64)
    if tmp is not None:
        posix.rename(tmp, path)
    return srv


# --- loading the handler, at start or when a stem cell is specialised ---------

# (handler, init_error) of this process; a stem cell (FAAS_STEM=1) starts
# with neither and is given its function once (docs/DESIGN.md section 6)
_loaded = (None, InitError('Runtime.NotSpecialised',
                           'This stem cell has no function yet'))
_stem = False


def load():
    global _loaded
    task_root = getenv('FAAS_TASK_ROOT') or getenv('LAMBDA_TASK_ROOT') \
        or '/var/task'
    try:
        _loaded = (load_handler(getenv('FAAS_HANDLER', ''), task_root), None)
    except InitError as e:
        _loaded = (None, e)
        _out(('faas runtime: %s: %s\n%s' % (e.etype, e.message, e.trace))
             .encode('utf-8', 'replace'))
    setup_logging()


def specialise(req):
    """{"id","specialise":{"env":{..}}}: a stem cell takes its function's
    environment (FAAS_HANDLER, FAAS_FUNCTION_NAME ...), enters its code,
    which the provisioner has just mounted at /var/task, and imports the
    handler. Once only: the cell belongs to that function from then on."""
    global _stem
    rid = req.get('id')
    spec = req.get('specialise')
    env = spec.get('env') if isinstance(spec, dict) else None
    if not _stem:
        return error_answer(rid, 'Runtime.BadRequest',
                            'Not a stem cell (or specialised already)',
                            '', '')
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and '=' not in k
            and '\0' not in k + v for k, v in env.items()):
        return error_answer(rid, 'Runtime.BadRequest',
                            'specialise.env must map names to strings',
                            '', '')
    _stem = False
    for k, v in env.items():
        kb = k.encode('utf-8', 'surrogateescape')
        vb = v.encode('utf-8', 'surrogateescape')
        posix.environ[kb] = vb
        posix.putenv(kb, vb)
    # the cwd is still the empty directory the code was mounted over
    posix.chdir(getenv('FAAS_TASK_ROOT') or '/var/task')
    t0 = time.monotonic()
    load()
    init_error = _loaded[1]
    return {'id': rid, 'ok': True, 'specialised': True,
            'import_ms': round((time.monotonic() - t0) * 1000, 3),
            'init_error': None if init_error is None else init_error.etype}


def main():
    global _stem
    # a parent that ignored SIGTERM must not make the runtime immune to it
    import _signal
    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    path = getenv('FAAS_SOCKET')
    if not path:
        _real_err.write('faas runtime: FAAS_SOCKET is not set\n')
        return 2
    _stem = getenv('FAAS_STEM') == '1'
    if not _stem:
        load()

    srv = listen(path)
    while True:
        fd, _ = srv._accept()
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        try:
            serve(conn, *_loaded)
        except OSError:
            pass
        except Exception as e:  # a bug here must not end the runtime
            _out(('faas runtime: connection dropped: %s'
                  % format_trace(e)).encode('utf-8', 'replace'))
        finally:
            conn.close()

