# The Python runtime's zygote (sandbox/zygote.c starts it):
#   /usr/bin/python3 -I -S zygote.py SOCKET RUNTIMES_DIR EXTENSION LOCK_FD \
#                                    KEY IDLE_S
# KEY is the revision (function@version) whose sandboxes it makes ("-": the
# shared zygote, for every function); such a zygote exits after IDLE_S
# seconds without a spawn (0: never).
# It starts the interpreter and imports the runtime's modules once, then
# forks every new python3 sandbox: a sandbox made here skips the ~12 ms of
# interpreter start and the runtime's imports. User code is never imported
# here (it differs per function): the sandbox imports its handler itself.
#
# The isolation is the C sandbox library's own code (the _faas_zygote
# extension links sandbox/sandbox_init.c and rootfs.c): spawn() clones
# the sandbox's process into its namespaces and v2 cgroup exactly as the
# fresh path does, enter() runs there the same steps (cgroups, root,
# hostname, lo, fds, rlimits, privileges, seccomp). What the sandbox must
# run comes in a memfd that only the sandbox reads: no function's
# environment ever sits in this process, whose memory every later sandbox
# inherits.
#
# Standard library modules only, the ones an -I -S interpreter has loaded
# anyway, plus _imp and PRELOAD: the zygote stays small (fork cost grows
# with RSS). PRELOAD are the stdlib modules nearly every handler imports
# (not user code).
import sys
import posix
import _socket
import _imp
import gc

SANDBOX_DIR = '/opt/faas/runtimes/python'   # runtimes_dir inside sandboxes
REQ_SIZE = 8 + 4096 + 80                    # zyg_req_t (zygote_int.h)
ANS_FMT_SIZE = 8 + 4 + 196                  # zyg_ans_t
MAGIC = 0x595a4146
OP_PING, OP_SPAWN, NFDS = 1, 2, 5
# Never a module that seeds a generator at import (random, tempfile...):
# every sandbox would inherit the same state.
PRELOAD = ('os',)


def log(msg):
    try:
        posix.write(2, ('faas zygote: %s\n' % msg).encode('utf-8', 'replace'))
    except OSError:
        pass


def load_extension(path):
    """Imports _faas_zygote from a memfd copy: the sandboxes map it as
    /memfd:..., not under a host path."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        data = b''
        while True:
            chunk = posix.read(fd, 1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        posix.close(fd)
    mfd = posix.memfd_create('faas-zygote', 0)
    try:
        off = 0
        while off < len(data):
            off += posix.write(mfd, data[off:])

        class Spec(object):
            name = '_faas_zygote'
            origin = '/proc/self/fd/%d' % mfd
        mod = _imp.create_dynamic(Spec())
        _imp.exec_dynamic(mod)
        return mod
    finally:
        posix.close(mfd)


def compile_as(host_path, sandbox_path):
    """Compiles a runtime file under the name it has inside sandboxes, so
    tracebacks and __file__ show sandbox paths, never host ones."""
    with open(host_path, 'rb') as f:
        return compile(f.read(), sandbox_path, 'exec', dont_inherit=True)


# the runtime files this zygote loaded: path -> (mtime_ns, size)
LOADED = {}


def note_loaded(path):
    st = posix.stat(path)
    LOADED[path] = (st.st_mtime_ns, st.st_size)


def stale():
    """True when a runtime file changed since the zygote loaded it (a new
    runtime was deployed): a fresh sandbox would run the new one."""
    for path, sig in LOADED.items():
        try:
            st = posix.stat(path)
        except OSError:
            return True
        if (st.st_mtime_ns, st.st_size) != sig:
            return True
    return False


def preload(runtimes_dir):
    """Imports the bootstrap's modules (faas_runtime) as they will be seen
    in the sandbox, and compiles bootstrap.py."""
    host_py = runtimes_dir + '/python/'
    note_loaded(host_py + 'zygote.py')
    try:
        note_loaded(host_py + 'faas_runtime.py')    # before reading it
        code = compile_as(host_py + 'faas_runtime.py',
                          SANDBOX_DIR + '/faas_runtime.py')
    except FileNotFoundError:
        LOADED.pop(host_py + 'faas_runtime.py', None)
        code = None     # a runtime without it: its bootstrap imports alone
    if code is not None:
        mod = type(sys)('faas_runtime')
        mod.__file__ = SANDBOX_DIR + '/faas_runtime.py'
        mod.__builtins__ = __builtins__
        sys.modules['faas_runtime'] = mod
        exec(code, mod.__dict__)
    for name in PRELOAD:
        __import__(name)
    note_loaded(host_py + 'bootstrap.py')
    return compile_as(host_py + 'bootstrap.py', SANDBOX_DIR + '/bootstrap.py')


def answer(conn, pid, errnum=0, msg=''):
    m = msg.encode('utf-8', 'replace')[:195]
    data = (pid.to_bytes(8, 'little', signed=True)
            + errnum.to_bytes(4, 'little', signed=True)
            + m + bytes(196 - len(m)))
    conn.sendall(data)


def refresh_runtime(env):
    """faas_runtime read FAAS_LOG_MAX when the zygote imported it."""
    fr = sys.modules.get('faas_runtime')
    if fr is None or not hasattr(fr, 'LOG_MAX'):
        return
    try:
        fr.LOG_MAX = max(0, int(env.get(b'FAAS_LOG_MAX', b'65536')))
    except ValueError:
        fr.LOG_MAX = 65536


def sandbox_main(ext, boot, keep):
    """In the new sandbox process: isolate it, then run the bootstrap as
    a fresh `python3 -I -S bootstrap.py` would. Never returns."""
    for s in keep:
        s.detach()      # enter() closes every fd; the objects must not
    argv, env = ext.enter()
    environ = {}
    for e in env:
        k, _, v = e.partition(b'=')
        environ[k] = v
    posix.environ.clear()
    posix.environ.update(environ)
    refresh_runtime(environ)
    # os.environ and os.environb (os is preloaded) wrap posix.environ
    # itself: they now show the sandbox's environment
    if b'TZ' in environ:
        import time
        time.tzset()
    sys.argv = argv[len(argv) - 1:]
    sys.orig_argv = list(argv)  # not the zygote's (host paths)
    # sys.path is already a fresh one's: -I adds no script directory
    del sys.modules['_faas_zygote']
    main = type(sys)('__main__')
    main.__file__ = SANDBOX_DIR + '/bootstrap.py'
    main.__builtins__ = __builtins__
    main.__cached__ = None
    sys.modules['__main__'] = main
    try:
        exec(boot, main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:
        sys.excepthook(type(e), e, e.__traceback__.tb_next)
        raise SystemExit(1)
    raise SystemExit(0)


def recv_request(conn):
    data, anc, _, _ = conn.recvmsg(REQ_SIZE, _socket.CMSG_SPACE(4 * NFDS))
    fds = []
    for level, typ, cdata in anc:
        if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
            cdata = cdata[:len(cdata) - len(cdata) % 4]
            fds += [int.from_bytes(cdata[i:i + 4], 'little')
                    for i in range(0, len(cdata), 4)]
    while data and len(data) < REQ_SIZE:
        more = conn.recv(REQ_SIZE - len(data))
        if not more:
            break
        data += more
    return data, fds


def peer_waits(conn):
    """False when the requester has gone (it gave up waiting): its sandbox
    is being destroyed or rebuilt the fresh way."""
    try:
        return conn.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT) != b''
    except BlockingIOError:
        return True
    except OSError:
        return False


def serve(ext, boot, sock_path, runtimes_dir, key, idle_s):
    for p in (sock_path + '.new', sock_path):
        try:
            posix.unlink(p)
        except FileNotFoundError:
            pass
    srv = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    srv.bind(sock_path + '.new')
    posix.chmod(sock_path + '.new', 0o600)
    srv.listen(128)
    posix.rename(sock_path + '.new', sock_path)
    want_dir = runtimes_dir.encode()
    want_key = b'' if key == '-' else key.encode()
    if idle_s > 0:
        srv.settimeout(idle_s)
    gc.collect()
    gc.freeze()     # no collector writes into pages the sandboxes share
    while True:
        try:
            fd, _ = srv._accept()
        except TimeoutError:
            # unused for idle_s: the next create starts another one
            posix.unlink(sock_path)
            log('idle for %d s: exiting' % idle_s)
            raise SystemExit(0)
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        fds = []
        try:
            data, fds = recv_request(conn)
            if len(data) != REQ_SIZE or \
                    int.from_bytes(data[:4], 'little') != MAGIC:
                answer(conn, 0, 71, 'malformed request')    # EPROTO
                continue
            op = int.from_bytes(data[4:8], 'little')
            rdir = data[8:8 + 4096].split(b'\0', 1)[0]
            if rdir != want_dir:
                answer(conn, 0, 22, 'zygote serves another runtimes dir')
                continue
            if data[8 + 4096:].split(b'\0', 1)[0] != want_key:
                answer(conn, 0, 22, 'zygote serves another revision')
                continue
            if op == OP_PING:
                answer(conn, posix.getpid())
                continue
            if op != OP_SPAWN or len(fds) != NFDS:
                answer(conn, 0, 22, 'bad request')
                continue
            if not peer_waits(conn):
                continue    # the caller gave up (timeout): make nothing
            if stale():
                # the caller builds this one the fresh way; the next
                # create finds no zygote and starts a new one
                answer(conn, 0, 116, 'the runtime changed on disk')  # ESTALE
                log('the runtime changed on disk: exiting')
                raise SystemExit(0)
            try:
                pid = ext.spawn(tuple(fds))
            except OSError as e:
                answer(conn, 0, e.errno or 5, 'clone: %s' % e.strerror)
                continue
            if pid == 0:
                del fds[:]  # closed by enter(); the numbers get reused
                sandbox_main(ext, boot, (srv, conn))
            answer(conn, pid)
        except OSError as e:
            log('request dropped: %s' % e)
        finally:
            for f in fds:
                try:
                    posix.close(f)
                except OSError:
                    pass
            conn.close()


def main():
    sock_path, runtimes_dir, ext_path, lock_fd, key, idle_s = sys.argv[1:7]
    lock_fd = int(lock_fd)
    posix.ftruncate(lock_fd, 0)
    posix.pwrite(lock_fd, b'%d\n' % posix.getpid(), 0)
    ext = load_extension(ext_path)
    ext.init()
    boot = preload(runtimes_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    serve(ext, boot, sock_path, runtimes_dir, key, int(idle_s))


if __name__ == '__main__':
    main()
