#!/usr/bin/env bash
# bench/peers/peers.sh: the platform's peers for the warm benchmark, in one
# nginx under a temp dir, on free loopback ports (HTTP and HTTPS):
#
#   /static   nginx `return 200 "ok"` (the ceiling)
#   /wsgi     nginx + uWSGI (Debian's uwsgi-plugin-python3) running
#             bench/peers/handler.py without isolation (wsgi_app.py)
#   /cgi      nginx + fcgiwrap running the same handler as a CGI script
#             (cgi_app.py: a fresh /usr/bin/python3 -I -S per request)
#
#   bench/peers/peers.sh start DIR    writes DIR/peers.env (PEER_HTTP_PORT,
#                                     PEER_HTTPS_PORT, pids), exits when ready
#   bench/peers/peers.sh stop DIR     stops what start started
#
# Environment: PEER_WORKERS nginx worker_processes (default 2, as the
# platform in bench/), UWSGI_PROCESSES (default 4), FCGI_CHILDREN (default 4).
# nginx is configured like conf/nginx.conf (same TLS set-up, access log on,
# keep-alive defaults), so only the application path differs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
verb=${1:-}
DIR=${2:-}
[[ -n $verb && -n $DIR ]] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
WORKERS=${PEER_WORKERS:-2}
UWSGI_PROCESSES=${UWSGI_PROCESSES:-4}
FCGI_CHILDREN=${FCGI_CHILDREN:-4}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop() {
    [[ -f $DIR/peers.env ]] || return 0
    # shellcheck disable=SC1090
    . "$DIR/peers.env"
    local p
    # each was started with setsid: its process group holds its children
    # (fcgiwrap's preforked children do not exit with their parent)
    for p in ${NGINX_PID:-} ${UWSGI_PID:-} ${FCGI_PID:-}; do
        kill -TERM -- "-$p" 2>/dev/null || true
    done
    for p in ${NGINX_PID:-} ${UWSGI_PID:-} ${FCGI_PID:-}; do
        for _ in $(seq 100); do kill -0 -- "-$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL -- "-$p" 2>/dev/null || true
    done
    rm -f "$DIR/peers.env"
}

start() {
    mkdir -p "$DIR"/{app,log,tmp,tls}
    cp "$HERE/handler.py" "$HERE/wsgi_app.py" "$HERE/cgi_app.py" "$DIR/app/"
    chmod 755 "$DIR/app/cgi_app.py" "$DIR/app"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
        -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" >/dev/null 2>&1
    local http_port https_port
    http_port=$(free_port)
    https_port=$(free_port)
    while [[ $https_port == "$http_port" ]]; do https_port=$(free_port); done

    # uWSGI: a master and UWSGI_PROCESSES workers on a Unix socket
    setsid uwsgi --plugin python3 --master --processes "$UWSGI_PROCESSES" \
        --socket "$DIR/uwsgi.sock" --chmod-socket=666 \
        --wsgi-file "$DIR/app/wsgi_app.py" --disable-logging --die-on-term \
        --need-app --listen 1024 </dev/null >"$DIR/log/uwsgi.log" 2>&1 &
    local uwsgi_pid=$!
    # fcgiwrap: FCGI_CHILDREN preforked children, each runs one CGI at a time
    setsid fcgiwrap -c "$FCGI_CHILDREN" -s "unix:$DIR/fcgi.sock" \
        </dev/null >"$DIR/log/fcgiwrap.log" 2>&1 &
    local fcgi_pid=$!

    cat >"$DIR/nginx.conf" <<CONF
user root root;                # as conf/nginx.conf (and the sockets are root's)
worker_processes $WORKERS;
worker_rlimit_nofile 20000;
daemon off;
pid $DIR/nginx.pid;
error_log $DIR/log/error.log warn;
events { worker_connections 8192; }
http {
    access_log $DIR/log/access.log;
    default_type application/octet-stream;
    client_body_temp_path $DIR/tmp/body;
    proxy_temp_path $DIR/tmp/proxy;
    fastcgi_temp_path $DIR/tmp/fastcgi;
    uwsgi_temp_path $DIR/tmp/uwsgi;
    scgi_temp_path $DIR/tmp/scgi;
    keepalive_timeout 65s;
    server {
        listen 127.0.0.1:$https_port ssl;
        listen 127.0.0.1:$http_port;
        server_name localhost;
        ssl_certificate $DIR/tls/cert.pem;
        ssl_certificate_key $DIR/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:peer_ssl:10m;
        location /static { return 200 "ok"; }
        location /wsgi {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:$DIR/uwsgi.sock;
        }
        location /cgi {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $DIR/app/cgi_app.py;
            fastcgi_pass unix:$DIR/fcgi.sock;
        }
    }
}
CONF
    setsid /usr/sbin/nginx -p "$DIR/" -c "$DIR/nginx.conf" -e "$DIR/log/error.log" \
        </dev/null >"$DIR/log/nginx.out" 2>&1 &
    local nginx_pid=$!
    cat >"$DIR/peers.env" <<ENV
PEER_HTTP_PORT=$http_port
PEER_HTTPS_PORT=$https_port
NGINX_PID=$nginx_pid
UWSGI_PID=$uwsgi_pid
FCGI_PID=$fcgi_pid
UWSGI_PROCESSES=$UWSGI_PROCESSES
FCGI_CHILDREN=$FCGI_CHILDREN
ENV
    local p ok
    for p in /static /wsgi /cgi; do
        ok=0
        for _ in $(seq 200); do
            if [[ $(curl -s --max-time 5 "http://127.0.0.1:$http_port$p") == ok ]]; then ok=1; break; fi
            sleep 0.05
        done
        if ((!ok)); then
            echo "peers: $p does not answer 'ok' (logs in $DIR/log/)" >&2
            tail -n 5 "$DIR"/log/*.log >&2 || true
            stop
            exit 1
        fi
    done
}

case $verb in
start) start ;;
stop) stop ;;
*) echo "peers.sh: start|stop DIR" >&2; exit 2 ;;
esac
