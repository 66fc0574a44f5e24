#!/usr/bin/env bash
# deploy.sh: install a release of blazz beside the previous ones, switch to it, restart the
# session daemons one at a time (each gated on the database), and roll back on failure.
# Run `deploy.sh --help` for the options and the steps.
set -euo pipefail
umask 022

usage() {
	cat <<'EOF'
Usage: deploy.sh [OPTIONS]

Install blazz as PREFIX/releases/<id> (its own virtualenv), then run the steps:
  db upgrade                 the new release's `blazzctl db upgrade`
  units install              `blazzctl units install` (ExecStart is PREFIX/current/venv/bin/blazz-sessiond)
  switch current             PREFIX/current -> releases/<id>, atomically (symlink + rename)
  restart blazz-session@N    for N = 1..instances, one at a time: `blazzctl daemon restart --rolling
                             --instance N`: a heartbeat from a new pid, running, every account owned
  restart blazz-api          when blazz-api.service is enabled here (see --api): `systemctl restart`,
                             then `blazzctl api health --wait TIMEOUT` (GET /health answers 200)
  health                     `blazzctl health --gate --wait 120`: database, daemons, heartbeats,
                             ownership (a failed account or a webhook backlog from before stays a
                             warning of `blazzctl health`, not a reason to roll back)
then remove old releases beyond --keep. When a step fails after the switch, current is switched
back, the instances already restarted are restarted onto the previous release, and deploy.sh
exits 1 naming the failed step (a first deploy has nothing to roll back to: current stays).
Running it twice for the same release reuses the release. Every step reads the same
configuration ($BLAZZ_CONFIG, else blazzctl's lookup), and the units name it for the daemons.

Options:
  --prefix DIR              deploy directory (default /opt/blazz)
  --source DIR              install from this checkout (default: the one deploy.sh is in)
  --wheel FILE              install this wheel instead of a checkout
  --instances N             session daemons on this host (default: daemon.instances of the config)
  --user USER               user the daemons run as (default blazz); it must be able to read the
                            configuration
  --keep K                  releases to keep, the current one included (default 5); the previous
                            one is never removed, so a rollback always has somewhere to go
  --unit-dir DIR            where systemd reads units (default /etc/systemd/system)
  --api                     enable blazz-api.service (the HTTP API) on this host (`units install --api`);
                            once enabled, every deploy restarts it
  --timeout S               seconds each restarted instance may take to be ready (default 120)
  --health-wait S           seconds the final health check may wait for OK (default 120)
  --system-site-packages    give the virtualenv the system's site-packages (PYTHON's, when PYTHON
                            is itself in a virtualenv) and install only blazz itself (--no-deps):
                            for hosts or CI where the dependencies are installed
  --dry-run                 print the plan, one line per step, then check what the deploy needs
                            (Python and venv, the service user, the configuration readable by
                            that user, systemd, the database reachable and migratable); touch
                            nothing; exit 1 naming each failed check
  -h, --help                show this help

Environment:
  BLAZZ_CONFIG   the configuration blazzctl reads (else its usual search, /etc/blazz/blazz.yaml last)
  SYSTEMCTL      the systemctl to use (else the one on PATH)
  PYTHON         the Python that creates the virtualenv (default python3)
  PIP_*          pip's own settings, e.g. PIP_NO_INDEX=1 PIP_FIND_LINKS=/srv/wheels for an offline
                 install from a wheelhouse

Release ids: <version>-g<commit> for a clean git checkout (plus -dirty<hash> with local changes),
<version>-s<hash> for another source tree, <version>-w<hash> for a wheel.

Example: sudo BLAZZ_CONFIG=/etc/blazz/blazz.yaml ./deploy.sh --prefix /opt/blazz --instances 4
EOF
}

PREFIX=/opt/blazz
SOURCE=""
WHEEL=""
INSTANCES=""
SERVICE_USER=blazz
KEEP=5
UNIT_DIR=/etc/systemd/system
TIMEOUT=120
HEALTH_WAIT=120
SYSTEM_SITE=0
DRY_RUN=0
API=0
PYTHON=${PYTHON:-python3}
export GIT_OPTIONAL_LOCKS=0 # `git status` must not write the index (--dry-run touches nothing)

usage_error() {
	echo "deploy.sh: $*" >&2
	echo "Try: deploy.sh --help" >&2
	exit 2
}

say() { echo "deploy: $*"; }

parse_args() {
	while [[ $# -gt 0 ]]; do
		case $1 in
		-h | --help) usage; exit 0 ;;
		--dry-run) DRY_RUN=1; shift ;;
		--api) API=1; shift ;;
		--system-site-packages) SYSTEM_SITE=1; shift ;;
		--prefix | --source | --wheel | --instances | --user | --keep | --unit-dir | --timeout | --health-wait)
			[[ $# -ge 2 && -n $2 ]] || usage_error "$1 needs a value"
			case $1 in
			--prefix) PREFIX=$2 ;;
			--source) SOURCE=$2 ;;
			--wheel) WHEEL=$2 ;;
			--instances) INSTANCES=$2 ;;
			--user) SERVICE_USER=$2 ;;
			--keep) KEEP=$2 ;;
			--unit-dir) UNIT_DIR=$2 ;;
			--timeout) TIMEOUT=$2 ;;
			--health-wait) HEALTH_WAIT=$2 ;;
			esac
			shift 2
			;;
		*) usage_error "unknown option: $1" ;;
		esac
	done
	[[ -z $SOURCE || -z $WHEEL ]] || usage_error "give --source or --wheel, not both"
	[[ -z $INSTANCES || $INSTANCES =~ ^[1-9][0-9]?$ && $INSTANCES -le 64 ]] ||
		usage_error "--instances must be a whole number from 1 to 64, not '$INSTANCES'"
	[[ $KEEP =~ ^[1-9][0-9]*$ ]] || usage_error "--keep must be a whole number of at least 1, not '$KEEP'"
	[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a whole number of seconds, not '$TIMEOUT'"
	[[ $HEALTH_WAIT =~ ^[0-9]+$ ]] || usage_error "--health-wait must be a whole number of seconds, not '$HEALTH_WAIT'"
	[[ $SERVICE_USER =~ ^[A-Za-z_][A-Za-z0-9_-]{0,30}$ ]] || usage_error "'$SERVICE_USER' is not a valid user name"
	PREFIX=$(realpath -m -- "$PREFIX")
	UNIT_DIR=$(realpath -m -- "$UNIT_DIR")
	if [[ -n $WHEEL ]]; then
		[[ -f $WHEEL && $WHEEL == *.whl ]] || usage_error "--wheel $WHEEL is not a wheel file"
		WHEEL=$(realpath -- "$WHEEL")
	else
		SOURCE=${SOURCE:-$(dirname -- "$(realpath -- "${BASH_SOURCE[0]}")")}
		[[ -f $SOURCE/setup.cfg && -f $SOURCE/blazzctl/__init__.py ]] ||
			usage_error "--source $SOURCE is not a blazz checkout (no setup.cfg and blazzctl/)"
		SOURCE=$(realpath -- "$SOURCE")
	fi
}

# --- the release id ------------------------------------------------------------------------------

release_id() {
	if [[ -n $WHEEL ]]; then
		local version hash
		version=$(basename -- "$WHEEL" | cut -d- -f2)
		hash=$(sha256sum -- "$WHEEL" | cut -c1-12)
		echo "${version}-w${hash}"
		return
	fi
	local version commit
	version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$SOURCE/blazzctl/__init__.py")
	[[ -n $version ]] || version=0
	if is_checkout; then
		commit=$(git -C "$SOURCE" rev-parse --short=12 HEAD)
		if [[ -z $(git -C "$SOURCE" status --porcelain 2>/dev/null) ]]; then
			echo "${version}-g${commit}"
		else
			echo "${version}-g${commit}-dirty$(source_changes_hash)"
		fi
	else
		echo "${version}-s$(source_tree_hash)"
	fi
}

is_checkout() { # the source is the top of a git work tree with a commit
	git -C "$SOURCE" rev-parse --verify --quiet HEAD >/dev/null 2>&1 &&
		[[ $(git -C "$SOURCE" rev-parse --show-toplevel 2>/dev/null) == "$SOURCE" ]]
}

source_changes_hash() {
	(
		cd "$SOURCE"
		git diff HEAD --binary
		git ls-files --others --exclude-standard -z | xargs -0r sha256sum --
	) | sha256sum | cut -c1-8
}

source_tree_hash() {
	(
		cd "$SOURCE"
		find . \( -name .git -o -name __pycache__ -o -name build -o -name '*.egg-info' -o -name .venv \) -prune \
			-o -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0r sha256sum --
	) | sha256sum | cut -c1-12
}

# --- the steps -----------------------------------------------------------------------------------

ID=""
REL=""
STEP="start"
SWITCHED=0
FINISHED=0
PREVIOUS=""
RESTARTED=0
API_RESTARTED=0

step() {
	STEP=$1
	say "step: $*"
}

blazzctl_of() { echo "$PREFIX/releases/$1/venv/bin/blazzctl"; }

install_release() {
	step "release $ID"
	if [[ -f $REL/.complete ]]; then
		say "release $ID is installed already: reusing it"
		return
	fi
	[[ $(readlink "$PREFIX/current" 2>/dev/null || true) != "releases/$ID" ]] ||
		{ echo "deploy.sh: current points at the incomplete release $ID" >&2; return 1; }
	rm -rf -- "$REL" # what an interrupted run left
	mkdir -p -- "$REL"
	local what=$WHEEL
	if [[ -z $WHEEL ]]; then # a copy, so the build writes nothing into the checkout
		mkdir -p -- "$REL/src"
		copy_source "$REL/src"
		what=$REL/src
	fi
	local pip_args=(--disable-pip-version-check --quiet)
	if [[ $SYSTEM_SITE == 1 ]]; then
		"$PYTHON" -m venv --system-site-packages --without-pip "$REL/venv"
		share_parent_venv
		"$REL/venv/bin/python" -m pip --version >/dev/null 2>&1 || "$REL/venv/bin/python" -m ensurepip --default-pip >/dev/null
		pip_args+=(--no-deps)
	else
		"$PYTHON" -m venv "$REL/venv"
	fi
	"$REL/venv/bin/python" -m pip install "${pip_args[@]}" "$what"
	# The release must at least import: the CLI and the daemon with their dependencies.
	"$REL/venv/bin/blazzctl" --version >/dev/null
	"$REL/venv/bin/python" -c "import daemons.session.daemon, daemons.session.main"
	printf 'id=%s\nfrom=%s\ninstalled=%s\n' "$ID" "${WHEEL:-$SOURCE}" "$(date -u +%FT%TZ)" >"$REL/.complete"
	say "installed release $ID"
}

share_parent_venv() { # PYTHON in a virtualenv (CI): its packages are the "system" ones meant
	# `python -m venv` run from a virtualenv bases the new one on the base interpreter, whose
	# site-packages lack them. Plain path lines: that environment's own .pth files (an editable
	# blazz) are not run, so the release imports its own blazz.
	"$PYTHON" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' || return 0
	local site
	site=$("$REL/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
	"$PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))' >"$site/_deploy_parent_venv.pth"
}

copy_source() { # what git tracks or would (not ignored files such as a local blazz.yaml)
	if is_checkout; then
		(cd "$SOURCE" && git ls-files -z --cached --others --exclude-standard |
			tar --null --ignore-failed-read -T - -cf -) | tar -C "$1" -xf -
	else
		tar -C "$SOURCE" --exclude=.git --exclude=build --exclude='*.egg-info' --exclude=__pycache__ \
			--exclude=.venv -cf - . | tar -C "$1" -xf -
	fi
}

configured_instances() { # daemon.instances, as the given blazzctl reads the configuration
	"$1" config show --json | "$PYTHON" -c \
		'import json, sys; print(json.load(sys.stdin)["settings"]["daemon"]["instances"])'
}

switch_current() { # switch_current RELEASE_ID: a new symlink renamed over the old one
	ln -sfn -- "releases/$1" "$PREFIX/.current.tmp"
	mv -Tf -- "$PREFIX/.current.tmp" "$PREFIX/current"
}

restart_instance() { # restart_instance BLAZZCTL N
	"$1" daemon restart --rolling --instance "$2" --timeout "$TIMEOUT" --no-health
}

health_gate() { # health_gate BLAZZCTL: wait for the checks a restart can break (a release older than --gate: all)
	if "$1" health --help 2>/dev/null | grep -- --gate >/dev/null; then
		"$1" health --gate --wait "$HEALTH_WAIT"
	else
		"$1" health --wait "$HEALTH_WAIT"
	fi
}

api_enabled() { [[ -e $UNIT_DIR/multi-user.target.wants/blazz-api.service ]]; }

restart_api() { # restart_api BLAZZCTL: restart blazz-api.service, then wait for GET /health to answer 200
	"${SYSTEMCTL:-systemctl}" restart blazz-api.service
	"$1" api health --wait "$TIMEOUT" >/dev/null
}

units_install() { # units_install BLAZZCTL
	local api=()
	[[ $API == 0 ]] || api=(--api)
	"$1" units install --instances "$INSTANCES" --prefix "$PREFIX" --user "$SERVICE_USER" --dest "$UNIT_DIR" "${api[@]}"
}

deploy() {
	install_release
	local blazzctl
	blazzctl=$(blazzctl_of "$ID")
	if [[ -z $INSTANCES ]]; then
		STEP="read daemon.instances"
		INSTANCES=$(configured_instances "$blazzctl")
		say "instances: $INSTANCES (daemon.instances)"
	fi

	step "db upgrade"
	"$blazzctl" db upgrade

	step "units install"
	units_install "$blazzctl"

	step "switch current"
	local before
	before=$(readlink "$PREFIX/current" 2>/dev/null || true)
	if [[ $before == "releases/$ID" ]]; then
		say "current is $ID already"
	else
		PREVIOUS=${before#releases/}
		switch_current "$ID"
		SWITCHED=1
		touch -- "$REL" # newest first when old releases are pruned
		say "current: ${PREVIOUS:-none} -> $ID"
	fi

	local n
	for ((n = 1; n <= INSTANCES; n++)); do
		step "restart blazz-session@$n"
		RESTARTED=$n
		restart_instance "$blazzctl" "$n"
	done

	if api_enabled; then
		step "restart blazz-api"
		API_RESTARTED=1
		restart_api "$blazzctl"
	fi

	step "health"
	health_gate "$blazzctl"
	FINISHED=1
	prune || say "warning: could not remove old releases (the deploy itself succeeded)"
	say "deployed $ID"
}

prune() {
	local current keep=$KEEP dir name
	current=$(readlink "$PREFIX/current" 2>/dev/null || true)
	while IFS= read -r dir; do
		name=$(basename -- "$dir")
		if [[ "releases/$name" == "$current" || $name == "$PREVIOUS" ]]; then
			continue
		fi
		if ((keep > 1)); then # the current release takes one of the K places
			keep=$((keep - 1))
			continue
		fi
		say "removing old release $name"
		rm -rf -- "$dir"
	done < <(find "$PREFIX/releases" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
}

rollback() {
	if [[ $SWITCHED != 1 ]]; then
		say "current was not switched: nothing to roll back"
		return 0
	fi
	if [[ -z $PREVIOUS ]]; then
		say "first deploy (there was no current release): nothing to roll back; current stays at $ID"
		return 0
	fi
	if [[ ! -f $PREFIX/releases/$PREVIOUS/.complete ]]; then
		say "the previous release $PREVIOUS is incomplete: cannot roll back to it; current stays at $ID"
		return 1
	fi
	local blazzctl n ok=0
	blazzctl=$(blazzctl_of "$PREVIOUS")
	say "rolling back: current -> $PREVIOUS"
	switch_current "$PREVIOUS" || ok=1
	units_install "$blazzctl" >/dev/null || ok=1
	for ((n = 1; n <= RESTARTED; n++)); do
		say "rolling back: restart blazz-session@$n onto $PREVIOUS"
		restart_instance "$blazzctl" "$n" || ok=1
	done
	if [[ $API_RESTARTED == 1 ]]; then
		say "rolling back: restart blazz-api onto $PREVIOUS"
		restart_api "$blazzctl" || ok=1
	fi
	health_gate "$blazzctl" || ok=1
	return "$ok"
}

on_exit() {
	local code=$?
	trap - EXIT
	set +e
	if [[ $code != 0 && $FINISHED == 0 && $DRY_RUN == 0 && -n $ID ]]; then
		echo "deploy.sh: step '$STEP' failed (exit $code) while deploying $ID" >&2
		if rollback; then
			if [[ $SWITCHED == 1 && -n $PREVIOUS ]]; then
				echo "deploy.sh: rolled back to $PREVIOUS; step '$STEP' failed" >&2
			elif [[ $SWITCHED == 1 ]]; then
				echo "deploy.sh: nothing to roll back (first deploy): fix what made step '$STEP' fail and deploy again" >&2
			fi
		else
			echo "deploy.sh: ROLLBACK INCOMPLETE after step '$STEP' failed: check \`blazzctl health\`" >&2
		fi
		exit 1
	fi
	exit "$code"
}

# --- the plan and the preflight (--dry-run) -------------------------------------------------------

CHECK_PY="" # a Python with blazz's dependencies: runs this release's code for the checks
CODE=""     # where that code is: the checkout, or the wheel unpacked into a temporary directory
FAILED_CHECKS=()

check() { # check NAME ok|FAILED DETAIL
	printf 'check: %-6s  %s: %s\n' "$2" "$1" "$3"
	[[ $2 == ok ]] || FAILED_CHECKS+=("$1")
}

find_checker() { # an environment with blazz's dependencies, running the code of the release to deploy
	CODE=$SOURCE
	if [[ -n $WHEEL ]]; then
		CODE=$(mktemp -d "${TMPDIR:-/tmp}/blazz-deploy-check.XXXXXX")
		trap 'rm -rf -- "$CODE"' EXIT
	fi
	local py on_path unpacked=0
	on_path=$(command -v blazzctl || true)
	for py in "$PREFIX/current/venv/bin/python" ${SOURCE:+"$SOURCE/.venv/bin/python"} \
		${on_path:+"$(dirname -- "$on_path")/python"} "$PYTHON"; do
		[[ -x $py || $py == "$PYTHON" ]] || continue
		if [[ -n $WHEEL && $unpacked == 0 ]]; then
			"$py" -m zipfile -e "$WHEEL" "$CODE" 2>/dev/null || continue
			unpacked=1
		fi
		CHECK_PY=$py
		if checker_python -c 'import blazzctl.cli.main, sqlalchemy, alembic, yaml' 2>/dev/null; then
			return 0
		fi
	done
	CHECK_PY=""
	return 1
}

checker_python() { PYTHONPATH=$CODE PYTHONDONTWRITEBYTECODE=1 "$CHECK_PY" "$@"; }
checker() { checker_python -m blazzctl "$@"; } # this release's blazzctl (--dry-run writes no bytecode)
json_field() { checker_python -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

required_python() { # the lowest Python the release declares (python_requires / Requires-Python)
	local found=""
	if [[ -n $SOURCE ]]; then
		found=$(sed -n 's/^python_requires *= *>= *\([0-9.]*\).*/\1/p' "$SOURCE/setup.cfg")
	elif [[ -n $CODE ]]; then
		found=$(sed -n 's/^Requires-Python: *>= *\([0-9.]*\).*/\1/p' "$CODE"/*.dist-info/METADATA 2>/dev/null)
	fi
	echo "${found:-3}"
}

check_python() {
	local need version
	need=$(required_python)
	if ! version=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null); then
		check python FAILED "$PYTHON does not run: install python3, or set PYTHON to a Python >= $need"
	elif ! "$PYTHON" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$need'.split('.'))))"; then
		check python FAILED "$PYTHON is $version; this release needs >= $need: set PYTHON to another one"
	elif ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
		check python FAILED "$PYTHON $version cannot create virtualenvs: apt-get install python3-venv"
	else
		check python ok "$PYTHON $version (the release needs >= $need)"
	fi
}

check_user() {
	if getent passwd "$SERVICE_USER" >/dev/null; then
		check "service user" ok "$SERVICE_USER exists"
	else
		check "service user" FAILED "$SERVICE_USER does not exist: adduser --system --group --home /var/lib/blazz --no-create-home $SERVICE_USER"
	fi
}

check_units() { # the configuration readable by the service user, and systemd: `blazzctl units check`
	local status name detail out
	out=$(checker units check --user "$SERVICE_USER" 2>&1 || true)
	[[ $out == *config* ]] || { check configuration FAILED "\`blazzctl units check\` did not run: $out"; return; }
	while read -r status name detail; do
		case $name in
		config) name=configuration ;;
		systemctl) name=systemd ;;
		user) continue ;; # checked above, with the command that creates it
		esac
		case $status in
		ok | FAILED) check "$name" "$status" "$detail" ;;
		warning:) echo "check: warning: $name $detail" ;;
		esac # its closing error message repeats what the lines said
	done <<<"$out"
}

check_database() { # reachable, and at a revision this release can migrate from (nothing applied)
	local out current head
	if ! out=$(checker db current --json 2>&1); then
		check database FAILED "$(grep -m1 -e '^error:' -e '"message"' <<<"$out" || echo "$out" | head -n1)"
		return
	fi
	read -r current head < <(json_field 'd["current"] or "-", d["head"]' <<<"$out")
	if [[ $current == "$head" ]]; then
		check database ok "reachable; schema at $head, nothing to migrate"
	elif [[ $current == - ]]; then
		check database ok "reachable; empty: \`db upgrade\` will create the schema ($head)"
	elif grep -qs -e "^revision = [\"']${current}[\"']" "$CODE"/migrations/versions/*.py; then
		check database ok "reachable; \`db upgrade\` will migrate $current -> $head"
	else
		check database FAILED "the schema is at $current, which this release does not know (a newer release migrated it)"
	fi
}

preflight() {
	check_python
	check_user
	if [[ -z $CHECK_PY ]]; then
		check blazzctl FAILED "no environment with blazz's dependencies to run the checks in: create one as in docs/operations.md (python3 -m venv .venv && .venv/bin/pip install .)"
		return
	fi
	check_units
	if [[ " ${FAILED_CHECKS[*]} " == *" configuration "* ]]; then
		echo "check: skipped database: not without a configuration the daemons can read"
	else
		check_database
	fi
}

dry_run() {
	local n count=$INSTANCES head
	find_checker || true
	if [[ -z $count && -n $CHECK_PY ]]; then
		count=$(checker config show --json 2>/dev/null | json_field 'd["settings"]["daemon"]["instances"]' 2>/dev/null ||
			true)
	fi
	local reuse=""
	[[ ! -f $PREFIX/releases/$ID/.complete ]] || reuse=" (installed already: reused)"
	echo "plan: release $ID: $PREFIX/releases/$ID, a virtualenv with ${WHEEL:-the checkout $SOURCE}$reuse"
	echo "plan: db upgrade"
	local api_flag=""
	[[ $API == 0 ]] || api_flag=" --api"
	echo "plan: units install: --instances ${count:-N} --prefix $PREFIX --user $SERVICE_USER --dest $UNIT_DIR$api_flag"
	echo "plan: switch current: $PREFIX/current -> releases/$ID (now: $(readlink "$PREFIX/current" 2>/dev/null || echo none))"
	if [[ -n $count ]]; then
		head="instances: $count"
		[[ -n $INSTANCES ]] && head+=" (--instances)" || head+=" (daemon.instances)"
		for ((n = 1; n <= count; n++)); do echo "plan: restart blazz-session@$n"; done
	else
		echo "plan: restart blazz-session@1 .. blazz-session@N, one at a time (N = daemon.instances)"
	fi
	if [[ $API == 1 ]] || api_enabled; then echo "plan: restart blazz-api, gated on its GET /health"; fi
	echo "plan: health: blazzctl health --gate --wait $HEALTH_WAIT"
	echo "plan: prune: keep the newest $KEEP releases"
	[[ -z ${head:-} ]] || echo "plan: $head"
	preflight
	if ((${#FAILED_CHECKS[@]})); then
		local names
		names=$(printf ', %s' "${FAILED_CHECKS[@]}")
		echo "deploy.sh: dry run: ${#FAILED_CHECKS[@]} check(s) failed: ${names:2}" >&2
		return 1
	fi
	echo "deploy: dry run: every check passed"
}

main() {
	parse_args "$@"
	ID=$(release_id)
	[[ $ID =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || usage_error "cannot make a release id from version '$ID'"
	REL=$PREFIX/releases/$ID
	if [[ $DRY_RUN == 1 ]]; then
		dry_run
		return
	fi
	mkdir -p -- "$PREFIX/releases"
	exec 9>"$PREFIX/.deploy.lock"
	flock -n 9 || { echo "deploy.sh: another deploy is running in $PREFIX" >&2; exit 1; }
	trap on_exit EXIT
	say "deploying $ID into $PREFIX"
	deploy
}

main "$@"
