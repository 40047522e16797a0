#!/bin/sh
# Emergency restore of one source of a kluis snapshot with standard tools only:
# gpg, zstd, awk, sha256sum, tar and POSIX sh. No kluis, no Node.js. See docs/emergency-restore.md.
#
#   emergency-restore.sh REPO_DIR SOURCE_NAME TARGET [SNAPSHOT_ID]
#
# Without SNAPSHOT_ID, the newest snapshot (by its signed time) that holds SOURCE_NAME; indexes
# whose signature does not verify are skipped, with a warning. A files source is unpacked into
# the folder TARGET; any other source is written to the file TARGET. A source with several
# streams (postgres: database:NAME and globals) needs KLUIS_STREAM=NAME.
#
# GNUPGHOME must hold the reader's private key and the writer's public key. Set
# KLUIS_WRITER_FINGERPRINT to the writer's fingerprint (from your kluis configuration, never from
# the repository) to accept only that signer; without it, a valid signature by any key in
# GNUPGHOME is accepted, so use a GNUPGHOME that holds only those two keys.
#
# Checks, in order: the writer's signature over the snapshot index; the manifest's SHA-256
# against the index and the writer's signature on the manifest; per chunk the OpenPGP integrity
# check (MDC), the zstd checksum and the plaintext size; the whole stream's size and SHA-256
# against the index and the manifest. TARGET appears only when every check passed.
# (kluis also checks each chunk's HMAC against its id; the stream SHA-256 covers the same.)
set -eu
umask 077

prog=$(basename "$0")
die() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 1
}

if [ "$#" -lt 3 ] || [ "$#" -gt 4 ]; then
  printf 'usage: %s REPO_DIR SOURCE_NAME TARGET [SNAPSHOT_ID]\n' "$prog" >&2
  exit 2
fi
repo=$1
source_name=$2
target=$3
snapshot=${4-}
stream_name=${KLUIS_STREAM-}

if [ -n "$snapshot" ]; then
  case $snapshot in *[!0-9a-f]*) die "SNAPSHOT_ID must be 32 lowercase hex digits (see snapshots/<id>.json.asc)" ;; esac
  [ "${#snapshot}" -eq 32 ] || die "SNAPSHOT_ID must be 32 lowercase hex digits (see snapshots/<id>.json.asc)"
fi
case $source_name in *[!A-Za-z0-9._-]* | '' | [._-]*) die "invalid SOURCE_NAME: $source_name" ;; esac
case $stream_name in *[!A-Za-z0-9._:-]*) die "invalid KLUIS_STREAM: $stream_name" ;; esac
[ -f "$repo/config.json" ] || die "$repo is not a kluis repository (no config.json)"
grep -q '"version": 1,' "$repo/config.json" || die "$repo/config.json: not repository format version 1"
for tool in gpg zstd awk sha256sum tar; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool (Debian: apt-get install gpg zstd coreutils mawk tar)"
done
if [ -e "$target" ] || [ -e "$target.partial" ]; then
  die "$target or $target.partial already exists: choose a new TARGET"
fi
pinned=$(printf '%s' "${KLUIS_WRITER_FINGERPRINT-}" | tr -d ' ' | tr 'abcdef' 'ABCDEF')

work=$(mktemp -d "${TMPDIR:-/tmp}/kluis-restore.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

# gpg with machine-readable status lines in $work/status; its messages are shown on failure only.
gpg_status() {
  if gpg --batch --no-tty --quiet --yes --status-fd 3 "$@" 3>"$work/status" 2>"$work/gpg.log"; then
    return 0
  fi
  cat "$work/gpg.log" >&2
  return 1
}

# The primary-key fingerprint of the one valid signature in $work/status, or failure.
signer_of() {
  awk '$1 == "[GNUPG:]" && ($2 == "BADSIG" || $2 == "ERRSIG" || $2 == "EXPKEYSIG" || $2 == "REVKEYSIG") { bad = 1 }
       $1 == "[GNUPG:]" && $2 == "VALIDSIG" { n++; fpr = $NF }
       END { if (bad || n != 1) exit 1; print fpr }' "$work/status"
}

# 1. The snapshot index: a cleartext-signed JSON text. Everything below is read from the text
#    gpg verified (never from the file itself, which could carry unsigned text around it).
#    verify_index ID writes $work/index.json and sets $signer, or prints why and fails.
verify_index() {
  index="$repo/snapshots/$1.json.asc"
  [ -f "$index" ] || { printf '%s: %s does not exist\n' "$prog" "$index" >&2; return 1; }
  gpg_status --output "$work/index.signed" --decrypt "$index" || {
    printf "%s: %s: the signature does not verify (modified, or the writer's public key is not in GNUPGHOME)\n" "$prog" "$index" >&2
    return 1
  }
  signer=$(signer_of) || { printf '%s: %s: not exactly one valid signature\n' "$prog" "$index" >&2; return 1; }
  if [ -n "$pinned" ] && [ "$signer" != "$pinned" ]; then
    printf '%s: %s: signed by %s, not by the trusted writer %s\n' "$prog" "$index" "$signer" "$pinned" >&2
    return 1
  fi
  # openpgp.js writes the signed text with CRLF line ends; JSON strings never hold a raw CR.
  tr -d '\r' <"$work/index.signed" >"$work/index.json"
  grep -qx ' "kluis": "snapshot-index",' "$work/index.json" &&
    grep -qx ' "version": 1,' "$work/index.json" &&
    grep -qx " \"id\": \"$1\"," "$work/index.json" &&
    grep -qx " \"writer\": \"$signer\"," "$work/index.json" || {
    printf '%s: %s: not a format-1 snapshot index of snapshot %s by its signer\n' "$prog" "$index" "$1" >&2
    return 1
  }
}

if [ -z "$snapshot" ]; then
  # The newest signed snapshot that holds the source; ISO 8601 times compare as text.
  newest=''
  for file in "$repo"/snapshots/*.json.asc; do
    [ -f "$file" ] || continue
    id=$(basename "$file" .json.asc)
    case $id in *[!0-9a-f]*) continue ;; esac
    verify_index "$id" || { printf '%s: skipping %s\n' "$prog" "$id" >&2; continue; }
    grep -qx "   \"name\": \"$source_name\"," "$work/index.json" || continue
    time=$(sed -n 's/^ "time": "\(.*\)",$/\1/p' "$work/index.json")
    if [ -z "$newest" ] || awk -v a="$time" -v b="$newest" 'BEGIN { exit !(a > b) }'; then
      newest=$time
      snapshot=$id
    fi
  done
  [ -n "$snapshot" ] || die "no snapshot with a valid signature holds source $source_name"
  printf '%s: the newest snapshot of %s is %s (%s)\n' "$prog" "$source_name" "$snapshot" "$newest" >&2
fi
verify_index "$snapshot" || die "snapshot $snapshot cannot be trusted"
[ -n "$pinned" ] ||
  printf '%s: index signed by %s (set KLUIS_WRITER_FINGERPRINT to require this key)\n' "$prog" "$signer" >&2

# The index is JSON.stringify(index, null, 1): one space of indent per level, one value per line.
# Source keys sit at 3 spaces, stream keys at 5, chunk tuple elements ([id, size, stored]) at 7.
awk -v src="$source_name" '
  { sub(/\r$/, "") }
  /^  }/ { in_src = 0; next }
  /^   "name": "/ { in_src = ($0 == "   \"name\": \"" src "\","); next }
  !in_src { next }
  /^   "type": "/ { v = $0; sub(/^   "type": "/, "", v); sub(/",$/, "", v); print "type", v; next }
  /^   "group": "/ { v = $0; sub(/^   "group": "/, "", v); sub(/",$/, "", v); print "group", v; next }
  /^     "name": "/ { v = $0; sub(/^     "name": "/, "", v); sub(/",$/, "", v); stream = v; next }
  /^     "size": [0-9]+,$/ { v = $0; gsub(/[^0-9]/, "", v); print "stream", stream, v; next }
  /^       "[0-9a-f]+",$/ { id = $0; gsub(/[ ",]/, "", id); next }
  /^       [0-9]+,$/ && id != "" { v = $0; gsub(/[^0-9]/, "", v); print "chunk", stream, id, v; id = ""; next }
' "$work/index.json" >"$work/plan"

source_type=$(awk '$1 == "type" { print $2; exit }' "$work/plan")
[ -n "$source_type" ] || die "snapshot $snapshot has no source named $source_name"
if [ -z "$stream_name" ]; then
  streams=$(awk '$1 == "stream" { n++ } END { print n + 0 }' "$work/plan")
  [ "$streams" -eq 1 ] || die "source $source_name has $streams streams: name one with KLUIS_STREAM=NAME"
  stream_name=$(awk '$1 == "stream" { print $2; exit }' "$work/plan")
fi
stream_size=$(awk -v s="$stream_name" '$1 == "stream" && $2 == s { print $3; exit }' "$work/plan")
[ -n "$stream_size" ] || die "source $source_name has no stream named $stream_name"
awk -v s="$stream_name" '$1 == "chunk" && $2 == s { print $3, $4 }' "$work/plan" >"$work/chunks"

# 2. The manifest of the source's key group: its SHA-256 is in the signed index; it is
#    encrypted to the group's readers, signed by the writer, and holds each stream's SHA-256.
group=$(awk '$1 == "group" { print $2; exit }' "$work/plan")
case $group in *[!a-z0-9_-]* | '' | [_-]*) die "$index: invalid key group '$group' for $source_name" ;; esac
manifest="$repo/snapshots/$snapshot.$group.manifest.pgp"
[ -f "$manifest" ] || die "$manifest does not exist"
# "manifests": { "<group>": { "size": N, "sha256": "<hex>" }, ... } at 1, 2 and 3 spaces.
want=$(awk -v g="$group" '
  /^ "manifests": [{]/ { in_m = 1; next }
  in_m && /^ [}]/ { in_m = 0 }
  in_m && /^  "/ { in_g = ($0 == "  \"" g "\": {"); next }
  in_g && /^   "sha256": "/ { v = $0; sub(/^   "sha256": "/, "", v); sub(/".*$/, "", v); print v; exit }
' "$work/index.json")
have=$(sha256sum <"$manifest" | cut -d' ' -f1)
[ -n "$want" ] && [ "$have" = "$want" ] || die "$manifest: SHA-256 differs from the signed index"
gpg_status --output "$work/manifest.json" --decrypt "$manifest" ||
  die "$manifest: cannot decrypt or verify (is the reader's private key in GNUPGHOME?)"
[ "$(signer_of)" = "$signer" ] || die "$manifest: not signed by the writer $signer"
grep -q "^{\"kluis\":\"snapshot-manifest\",\"version\":1,\"snapshot\":\"$snapshot\",\"group\":\"$group\"," "$work/manifest.json" ||
  die "$manifest: not the manifest of snapshot $snapshot, key group $group"
# One line per object that starts with "name" (sources and streams): in JSON text the bytes
# {"name":" can only begin such an object, never occur inside a string.
stream_sha=$(awk '{ gsub(/\{"name":"/, "\n&"); print }' "$work/manifest.json" |
  awk -v src="$source_name" -v s="$stream_name" '
    /^\{"name":"[^"]*","type":"/ { in_src = (index($0, "{\"name\":\"" src "\",\"type\":\"") == 1); next }
    in_src && index($0, "{\"name\":\"" s "\",\"size\":") == 1 {
      v = $0; sub(/^.*"sha256":"/, "", v); sub(/".*$/, "", v); print v; exit
    }')
case $stream_sha in '' | *[!0-9a-f]*) die "$manifest: no SHA-256 for $source_name/$stream_name" ;; esac

# 3. Each chunk in order: gpg (MDC checked), zstd -d (frame checksum checked), size, append.
#    The stream is assembled beside the target ($target.partial) and only used once whole.
output=$target
: >"$output.partial" || die "cannot create $output.partial"
count=0
while read -r id size; do
  object="$repo/chunks/$(printf '%s' "$id" | cut -c1-2)/$id"
  [ -f "$object" ] || { rm -f "$output.partial"; die "$object is missing"; }
  if ! gpg --batch --no-tty --quiet --yes --output "$work/chunk.zst" --decrypt "$object"; then
    rm -f "$output.partial"
    die "$object: gpg cannot decrypt it, or it was modified"
  fi
  if ! zstd -d -q -f -o "$work/chunk" "$work/chunk.zst"; then
    rm -f "$output.partial"
    die "$object: not a valid zstd frame"
  fi
  actual=$(wc -c <"$work/chunk" | tr -d ' ')
  [ "$actual" = "$size" ] || { rm -f "$output.partial"; die "$object: $actual bytes, the index says $size"; }
  cat "$work/chunk" >>"$output.partial"
  count=$((count + 1))
done <"$work/chunks"

# 4. The whole stream against the signed index (size) and the signed manifest (SHA-256).
actual=$(wc -c <"$output.partial" | tr -d ' ')
sha=$(sha256sum <"$output.partial" | cut -d' ' -f1)
if [ "$actual" != "$stream_size" ] || [ "$sha" != "$stream_sha" ]; then
  rm -f "$output.partial"
  die "restored $source_name/$stream_name does not match the signed manifest (size $actual, sha256 $sha)"
fi
if [ "$source_type" = files ]; then
  # A verified POSIX tar stream: unpacked into a folder beside the target, then moved into place.
  mv "$output.partial" "$work/stream.tar"
  mkdir "$target.partial" && tar -xpf "$work/stream.tar" -C "$target.partial" ||
    { rm -rf "$target.partial"; die "tar could not unpack the verified stream into $target"; }
  mv "$target.partial" "$target"
else
  mv "$output.partial" "$target"
fi
printf '%s: restored %s/%s of snapshot %s (%s bytes, %s chunks, sha256 %s) to %s\n' \
  "$prog" "$source_name" "$stream_name" "$snapshot" "$actual" "$count" "$sha" "$target" >&2
case $source_type in
  sqlite) printf '%s: a SQLite database file: sqlite3 %s "PRAGMA integrity_check"\n' "$prog" "$target" >&2 ;;
  postgres) printf '%s: a pg_dump archive: pg_restore --dbname=URL --single-transaction %s\n' "$prog" "$target" >&2 ;;
  mysql) printf '%s: SQL from mariadb-dump or mysqldump: mariadb DATABASE < %s\n' "$prog" "$target" >&2 ;;
esac
