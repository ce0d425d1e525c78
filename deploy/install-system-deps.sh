#!/bin/sh
# System libraries that optional wheels need but do not bundle. Idempotent and never fatal:
# run by `make install` (the $(STAMP) rule); safe to run again by hand.
#
#   libfftw3-single3  single-precision FFTW (libfftw3f.so.3), loaded by fCWT's wheel
#                     (`import fcwt` fails with "libfftw3f.so.3: cannot open shared object").
#
# As root with apt-get it installs what is missing (quietly; `apt-get update` first only if
# the install fails). Otherwise it prints the command to run and exits 0: the package works
# without fCWT, which then reports itself missing (bioxen_dask.engines.available_engines()).

PKGS="libfftw3-single3"
LIB="libfftw3f.so.3"

have_lib() {
    if command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q "$LIB"; then
        return 0
    fi
    for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
        [ -e "$d/$LIB" ] && return 0
    done
    return 1
}

if have_lib; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: $LIB not found and apt-get is not available; install single-precision FFTW" \
         "(e.g. 'dnf install fftw-libs-single', 'brew install fftw' or 'conda install fftw') to use fCWT." >&2
    exit 0
fi

if [ "$(id -u)" != "0" ]; then
    echo "install-system-deps: $LIB not found; to use fCWT run: sudo apt-get install -y $PKGS" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Offline, `apt-get update` would otherwise wait out the default timeouts and retries.
APT_NET="-o Acquire::Retries=0 -o Acquire::http::Timeout=15 -o Acquire::https::Timeout=15"
if apt-get install -y -qq --no-install-recommends $PKGS >/dev/null 2>&1 \
   || { apt-get update -qq $APT_NET >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends $APT_NET $PKGS >/dev/null 2>&1; }; then
    echo "install-system-deps: installed $PKGS"
else
    echo "install-system-deps: could not install $PKGS with apt-get (offline?); fCWT stays unavailable." \
         "Run 'apt-get update && apt-get install -y $PKGS' when the network is reachable." >&2
fi
exit 0
