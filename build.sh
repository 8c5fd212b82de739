#!/usr/bin/env bash
# build.sh: the one entry point.
#   ./build.sh deps    install missing Debian packages and the npm test peers
#   ./build.sh build   build everything into objs/ (and objs/asan/ for tests)
#   ./build.sh test    deps + build + prove -r t/
#   ./build.sh run     start the whole platform under ./var/ (see README)
#   ./build.sh stop    stop what run started
#   ./build.sh bench   run the benchmarks under bench/
#   ./build.sh fuzz [target...]  build the libFuzzer targets (fuzz/) and run
#                      each for FUZZ_SECONDS (60; 0 only builds) over its corpus
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

# Every Debian package the project needs, to build, test, run and bench.
DEB_PACKAGES=(
    build-essential pkg-config git ca-certificates
    protobuf-c-compiler libprotobuf-c-dev libhiredis-dev libjwt-dev
    libjansson-dev libzip-dev libseccomp-dev libmicrohttpd-dev libuv1-dev
    libcurl4-openssl-dev libssl-dev libmariadb-dev libmariadb-dev-compat
    libmongoc-dev libbson-dev libcap-dev libsystemd-dev systemd
    nginx nginx-dev libpcre2-dev zlib1g-dev
    redis-server redis-sentinel mariadb-server
    python3 zip unzip procps psmisc iproute2
    libtest-base-perl libjson-pp-perl libio-socket-ssl-perl libredis-perl
    libdbd-mariadb-perl libwww-perl
    wrk uwsgi uwsgi-plugin-python3 fcgiwrap gnuplot-nox
    python3-dev
    clang libclang-rt-14-dev
    prometheus chromium
)
# npm test peers, installed into the ignored folder .deps/npm.
NPM_PACKAGES=(s3rver@3.7.1)

log() { printf '==> %s\n' "$*" >&2; }

deps() {
    local missing=() p
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
            || missing+=("$p")
    done
    # Node.js: the machine image may bring its own build (with its own npm);
    # only a machine without node gets Debian's.
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    local have=1
    for p in "${NPM_PACKAGES[@]}"; do
        [[ -d .deps/npm/node_modules/${p%@*} ]] || have=0
    done
    if ((!have)); then
        log "installing npm test peers: ${NPM_PACKAGES[*]}"
        mkdir -p .deps/npm
        npm install --prefix .deps/npm --no-audit --no-fund --loglevel=error \
            "${NPM_PACKAGES[@]}" >/dev/null
    fi
}

# The nginx module is built against Debian's nginx source tree (nginx-dev),
# configured --with-compat so the .so loads into Debian's nginx binary, and
# --with-http_ssl_module (as Debian's nginx is) for TLS to the agents.
build_module() {
    local src=objs/nginx
    if [[ ! -f $src/objs/Makefile || ngx_faas_module/config -nt $src/objs/Makefile \
          || build.sh -nt $src/objs/Makefile ]]; then
        rm -rf "$src"
        mkdir -p objs
        cp -r /usr/share/nginx/src "$src"
        (cd "$src" && ./configure --with-compat --with-threads \
            --with-http_ssl_module \
            --add-dynamic-module="$ROOT/ngx_faas_module" >configure.log 2>&1) \
            || { cat "$src/configure.log" >&2; return 1; }
    fi
    make -s -C "$src" -f objs/Makefile modules -j"$JOBS" >/dev/null
    # Never overwrite a loaded .so in place (a running nginx's new workers
    # would crash): copy beside it, then rename over it.
    cp "$src"/objs/ngx_http_faas_module.so objs/.ngx_http_faas_module.so.tmp
    mv -f objs/.ngx_http_faas_module.so.tmp objs/ngx_http_faas_module.so
}

build() {
    log "building into objs/"
    mkdir -p objs
    # Several builds may share this tree (helpers, a test run): serialise.
    exec 9>objs/.build.lock
    flock 9
    make -s -j"$JOBS"
    # FAAS_NO_ASAN=1 skips the sanitizer build during development.
    [[ ${FAAS_NO_ASAN:-0} == 1 ]] || make -s -j"$JOBS" SAN=1
    build_module
    flock -u 9
}

# The libFuzzer targets (fuzz/*.c) with clang into objs/fuzz: every object
# instrumented, ASan + UBSan, undefined behaviour fatal.
FUZZ_SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined \
-fno-sanitize-recover=undefined -fno-omit-frame-pointer"

build_fuzz() {
    log "building the fuzz targets into objs/fuzz/"
    mkdir -p objs/fuzz
    exec 8>objs/fuzz/.build.lock
    flock 8
    make -s -j"$JOBS" CC=clang OBJS=objs/fuzz SANFLAGS="$FUZZ_SANFLAGS" \
        fuzz-targets
    flock -u 8
}

# Runs each target (all by default) for FUZZ_SECONDS over its committed
# corpus; new inputs go to fuzz/new/<target>/, crashes to
# fuzz/crashes/<target>/ (both ignored). Non-zero when a target crashed.
run_fuzz() {
    local secs=${FUZZ_SECONDS:-60} t rc failed=() targets=("$@") tmp
    ((${#targets[@]})) || targets=($(cd fuzz && ls *.c | sed 's/\.c$//'))
    tmp=$(mktemp -d) # where zipcheck unpacks
    for t in "${targets[@]}"; do
        [[ -x objs/fuzz/fuzz/$t ]] || { log "no fuzz target $t"; exit 2; }
        mkdir -p "fuzz/new/$t" "fuzz/crashes/$t"
        log "fuzzing $t for ${secs}s"
        rc=0
        FUZZ_TMPDIR=$tmp objs/fuzz/fuzz/"$t" -max_total_time="$secs" \
            -print_final_stats=1 -artifact_prefix="fuzz/crashes/$t/" \
            "fuzz/new/$t" "fuzz/corpus/$t" >"fuzz/new/$t.log" 2>&1 || rc=$?
        # the last coverage line, the run's totals, any sanitizer report
        grep 'cov:' "fuzz/new/$t.log" | tail -1 >&2 || true
        grep -E '^(stat::number_of_executed_units|==[0-9]+== ?ERROR|SUMMARY)' \
            "fuzz/new/$t.log" >&2 || true
        ((rc == 0)) || failed+=("$t")
    done
    rm -rf "$tmp"
    if ((${#failed[@]})); then
        log "crashes in: ${failed[*]} (inputs in fuzz/crashes/, logs in fuzz/new/)"
        return 1
    fi
}

run_tests() {
    # Test files run one at a time: the sandbox tests measure and freeze
    # cgroups, and parallel runs on 2 vCPUs only make timings noisy.
    prove -r ${PROVE_ARGS:-} t/
}

cmd=${1:-}
case "$cmd" in
deps) deps ;;
build) build ;;
test)
    deps
    build
    shift
    if (($#)); then prove "$@"; else run_tests; fi
    ;;
run|stop|status)
    # run: install what is missing and build first (FAAS_NO_ASAN=1 skips
    # the sanitizer build); conf/platform.sh does the rest.
    if [[ $cmd == run ]]; then
        deps
        build
        exec 9>&-
    fi
    exec conf/platform.sh "$cmd"
    ;;
fuzz)
    deps
    shift
    build_fuzz
    [[ ${FUZZ_SECONDS:-60} == 0 ]] || run_fuzz "$@"
    ;;
bench)
    deps
    build
    shift
    exec bench/run.sh "$@"
    ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
