#!/usr/bin/env bash
# Installs what the WordPress integration tests need (tests/fixtures/wordpress.py starts it):
#   Debian's wordpress (code in /usr/share/wordpress), PHP's CLI with the extensions
#   WordPress uses, and MariaDB (server binaries; the fixture starts a private instance).
# No Apache, no Docker: the fixture serves WordPress with PHP's built-in server on loopback.
# Idempotent and quick when everything is there. Works as root on a fresh Debian 12.
set -euo pipefail

PACKAGES=(
  wordpress
  php-cli php-mysql php-gd php-xml php-mbstring php-curl
  mariadb-server mariadb-client
)

log() { printf 'install-wordpress: %s\n' "$*" >&2; }

missing=()
for package in "${PACKAGES[@]}"; do
  # "install ok installed" only: a package removed but not purged reports other states
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
  log "already installed: ${PACKAGES[*]}"
else
  if [ "$(id -u)" -ne 0 ]; then
    log "need root to install ${missing[*]}; run: sudo bash $0"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh container has no policy-rc.d: the postinst scripts of mariadb-server try to
  # start a server through invoke-rc.d. Harmless either way; the fixture runs its own.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

# What the fixture relies on, checked so a broken install fails here and not in a test.
for tool in php mariadbd mariadb-install-db; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    log "$tool not found after installation"; exit 1
  fi
done
[ -f /usr/share/wordpress/wp-load.php ] || { log "/usr/share/wordpress/wp-load.php missing"; exit 1; }
php -r 'foreach (["mysqli", "gd", "mbstring", "xml", "curl", "fileinfo"] as $e) { if (!extension_loaded($e)) { fwrite(STDERR, "PHP extension $e missing\n"); exit(1); } }'
log "ready: $(php -r 'echo "PHP ", PHP_VERSION;'), WordPress $(sed -n "s/^\$wp_version = '\(.*\)';/\1/p" /usr/share/wordpress/wp-includes/version.php)"
