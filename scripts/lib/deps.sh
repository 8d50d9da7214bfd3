# shellcheck shell=bash
# What the tests need from Debian, written once. Sourced by scripts/test-all and scripts/faults;
# `bash scripts/lib/deps.sh install GROUP...` / `... explain GROUP...` run it alone.
#
#   deps_missing GROUP...   the missing ones, one "what package" a line (what: a tool, a file)
#   deps_install GROUP...   installs the packages of the missing ones (root, or sudo), then checks
#                           again; returns 1 naming what is still missing
#   deps_explain GROUP...   names each missing tool and the command that installs it; 1 if any
#
# Groups:
#   dns      BIND 9, Knot and PowerDNS (gsqlite3 backend; sqlite3 makes its database) servers and
#            client tools (test/fixtures/dns-servers.ts). The backend counts as present by the
#            schema it ships (the fixture reads it; the .so's path depends on the architecture).
#            On a host booted with systemd, installing pdns-server also starts Debian's pdns.service
#            on port 53; the fixtures run their own pdns_server and never use it.
#   build    libsystemd-dev + pkg-config (the sd-notify addon compiles during npm ci); libkrb5-dev
#            (the gss addon, native/gss, links MIT libgssapi_krb5)
#   gss      a local Kerberos realm for GSS-TSIG (test/fixtures/kdc.ts): the MIT KDC, kadmin.local
#            and kinit (nsupdate -g as the interoperability oracle)
#   samba    Samba as an Active Directory domain controller with its internal DNS, run by the tests in
#            a network namespace of their own (test/fixtures/samba.ts): samba, samba-tool, the
#            provisioning data (samba-ad-provision) and the directory's ldb modules
#            (samba-dsdb-modules, only Recommended by samba). /etc/samba/smb.conf is never written:
#            Debian's samba-ad-dc service does not start (its ExecCondition wants an AD DC there),
#            and smbd/nmbd (started by the package under a real init) use nothing the fixture does.
#   vm       victoria-metrics (also vmagent, vmctl), promtool (package prometheus)
#   faults   the fault suite's networks (test/faults/net.ts): nft drops, iptables NFQUEUE for the
#            userspace delayer (python3), ping to check it; keepalived beside the agent
#   senders  the syslog senders' world (test/senders/): unbound as the devices' caching resolver;
#            rsyslog, syslog-ng, busybox (its syslogd applet: what busybox-syslogd runs) and
#            inetutils-syslogd, UNPACKED (apt-get download + dpkg-deb -x) into
#            $DEPS_SENDERS/<package>, their libraries installed with apt-get satisfy. Not
#            installed as packages: rsyslog, syslog-ng, busybox-syslogd and inetutils-syslogd all
#            Provide and Conflict with system-log-daemon, so they exclude each other, and
#            installing any would replace the machine's own logger (and start it); busybox is
#            unpacked too, so no applet link lands in the machine's PATH. The tests run the
#            unpacked binaries in their own namespaces.
#
# The Debian roots for the real-systemd tests (debootstrap, systemd-container) are scripts/make-root's.

DEPS_CACHE=${FAILOVER_AGENT_CACHE:-$HOME/.cache/failover-agent}
DEPS_SENDERS=$DEPS_CACHE/senders

# "what package" pairs; what = a tool in PATH or /usr/sbin, /sbin; an absolute path = a file;
# unpack:<package> = that package unpacked under $DEPS_SENDERS (checked by its main binary)
DEPS_dns=(named:bind9 knotd:knot nsupdate:bind9-dnsutils dig:bind9-dnsutils tsig-keygen:bind9-utils kdig:knot-dnsutils
  pdns_server:pdns-server pdnsutil:pdns-server /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql:pdns-backend-sqlite3 sqlite3:sqlite3)
DEPS_build=(/usr/include/systemd/sd-daemon.h:libsystemd-dev pkg-config:pkg-config /usr/include/mit-krb5/gssapi/gssapi_ext.h:libkrb5-dev)
DEPS_gss=(krb5kdc:krb5-kdc kdb5_util:krb5-kdc kadmin.local:krb5-admin-server kinit:krb5-user)
DEPS_samba=(samba:samba samba-tool:samba-common-bin /usr/share/samba/setup/ad-schema/AD_DS_Attributes__Windows_Server_2012_R2.ldf:samba-ad-provision "/usr/lib/$(uname -m)-linux-gnu/samba/ldb/acl.so:samba-dsdb-modules")
DEPS_vm=(victoria-metrics:victoria-metrics vmagent:victoria-metrics vmctl:victoria-metrics promtool:prometheus)
DEPS_faults=(nft:nftables iptables:iptables ping:iputils-ping python3:python3 keepalived:keepalived)
DEPS_senders=(unbound:unbound unbound-control:unbound unpack:rsyslog unpack:syslog-ng-core unpack:busybox unpack:inetutils-syslogd)

# the binary by which an unpacked package counts as present
deps_unpacked_bin() {
  case "$1" in
    rsyslog) echo "$DEPS_SENDERS/rsyslog/usr/sbin/rsyslogd" ;;
    syslog-ng-core) echo "$DEPS_SENDERS/syslog-ng-core/usr/sbin/syslog-ng" ;;
    busybox) echo "$DEPS_SENDERS/busybox/bin/busybox" ;;
    inetutils-syslogd) echo "$DEPS_SENDERS/inetutils-syslogd/usr/sbin/syslogd" ;;
    *) echo "$DEPS_SENDERS/$1/.unpacked" ;;
  esac
}

deps_have() {
  local what=$1
  case "$what" in
    unpack:*) [ -x "$(deps_unpacked_bin "${what#unpack:}")" ] ;;
    /*) [ -e "$what" ] ;;
    *) command -v "$what" >/dev/null 2>&1 || [ -x "/usr/sbin/$what" ] || [ -x "/sbin/$what" ] ;;
  esac
}

deps_missing() {
  local group entry arr
  for group in "$@"; do
    arr="DEPS_${group}[@]"
    for entry in "${!arr}"; do
      if [ "${entry%%:*}" = unpack ]; then
        deps_have "$entry" || echo "${entry#unpack:} unpack"
      else
        deps_have "${entry%:*}" || echo "${entry%:*} ${entry##*:}"
      fi
    done
  done
}

deps_sudo() {
  if [ "$(id -u)" -eq 0 ]; then
    DEPS_SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    DEPS_SUDO=(sudo)
  else
    return 1
  fi
}

# download <package> and unpack it under $DEPS_SENDERS/<package>, after installing what it Depends on
deps_unpack() {
  local pkg=$1 tmp deb
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  (cd "$tmp" && apt-get download "$pkg") >&2 || { rm -rf "$tmp"; return 1; }
  deb=$(ls "$tmp"/*.deb)
  "${DEPS_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 satisfy -y \
    --no-install-recommends "$(dpkg-deb -f "$deb" Depends)" >&2 || { rm -rf "$tmp"; return 1; }
  mkdir -p "$DEPS_SENDERS"
  rm -rf "$DEPS_SENDERS/$pkg.new"
  dpkg-deb -x "$deb" "$DEPS_SENDERS/$pkg.new"
  dpkg-deb -f "$deb" Version >"$DEPS_SENDERS/$pkg.new/.unpacked"
  rm -rf "$DEPS_SENDERS/$pkg"
  mv "$DEPS_SENDERS/$pkg.new" "$DEPS_SENDERS/$pkg"
  rm -rf "$tmp"
}

deps_install() {
  local missing packages=() unpack=() what pkg still
  missing=$(deps_missing "$@")
  [ -n "$missing" ] || return 0
  while read -r what pkg; do
    if [ "$pkg" = unpack ]; then unpack+=("$what"); else packages+=("$pkg"); fi
  done <<<"$missing"
  echo "==> missing: $(echo "$missing" | awk '{printf "%s%s", (NR>1?", ":""), $1}') -> installing" >&2
  if ! deps_sudo; then
    echo "need root or sudo to install:" >&2
    deps_explain "$@"
    return 1
  fi
  "${DEPS_SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update >&2
  if [ "${#packages[@]}" -gt 0 ]; then
    # shellcheck disable=SC2046
    "${DEPS_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
      --no-install-recommends $(printf '%s\n' "${packages[@]}" | sort -u) >&2
  fi
  for pkg in "${unpack[@]}"; do deps_unpack "$pkg" || true; done
  still=$(deps_missing "$@")
  if [ -n "$still" ]; then
    echo "still missing after installing:" >&2
    deps_explain "$@"
    return 1
  fi
}

deps_explain() {
  local missing what pkg
  missing=$(deps_missing "$@")
  [ -n "$missing" ] || return 0
  while read -r what pkg; do
    if [ "$pkg" = unpack ]; then
      echo "  $what (unpacked under $DEPS_SENDERS): bash scripts/lib/deps.sh install senders" >&2
    else
      echo "  $what: apt-get install $pkg" >&2
    fi
  done <<<"$missing"
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cmd=${1:-}
  shift || true
  case "$cmd" in
    install) deps_install "$@" ;;
    explain) deps_explain "$@" ;;
    missing) deps_missing "$@" ;;
    *) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 64 ;;
  esac
fi
