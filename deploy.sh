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
  health                     `blazzctl health --wait 120`
then remove old releases beyond --keep. When a step fails after the switch, current is switched
back, the instances already restarted are restarted onto the previous release, and deploy.sh
exits 1 naming the failed step. Running it twice for the same release reuses the release.

Options:
  --prefix DIR              deploy directory (default /opt/blazz)
  --source DIR              install from this checkout (default: the one deploy.sh is in)
  --wheel FILE              install this wheel instead of a checkout
  --instances N             session daemons on this host (default: daemon.instances of the config)
  --user USER               user the daemons run as (default blazz; need not exist for --dry-run)
  --keep K                  releases to keep, the current one included (default 5); the previous
                            one is never removed, so a rollback always has somewhere to go
  --unit-dir DIR            where systemd reads units (default /etc/systemd/system)
  --timeout S               seconds each restarted instance may take to be ready (default 120)
  --health-wait S           seconds the final health check may wait for OK (default 120)
  --system-site-packages    give the virtualenv the system's site-packages and install only blazz
                            itself (--no-deps): for hosts or CI where the dependencies are installed
  --dry-run                 print the plan, one line per step; touch nothing
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
	"$blazzctl" units install --instances "$INSTANCES" --prefix "$PREFIX" --user "$SERVICE_USER" --dest "$UNIT_DIR"

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

	step "health"
	"$blazzctl" health --wait "$HEALTH_WAIT"
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
	if [[ -z $PREVIOUS || ! -f $PREFIX/releases/$PREVIOUS/.complete ]]; then
		say "no previous release to roll back to: current stays at $ID"
		return 1
	fi
	local blazzctl n ok=0
	blazzctl=$(blazzctl_of "$PREVIOUS")
	say "rolling back: current -> $PREVIOUS"
	switch_current "$PREVIOUS" || ok=1
	"$blazzctl" units install --instances "$INSTANCES" --prefix "$PREFIX" --user "$SERVICE_USER" \
		--dest "$UNIT_DIR" >/dev/null || ok=1
	for ((n = 1; n <= RESTARTED; n++)); do
		say "rolling back: restart blazz-session@$n onto $PREVIOUS"
		restart_instance "$blazzctl" "$n" || ok=1
	done
	"$blazzctl" health --wait "$HEALTH_WAIT" || ok=1
	return "$ok"
}

on_exit() {
	local code=$?
	trap - EXIT
	set +e
	if [[ $code != 0 && $FINISHED == 0 && $DRY_RUN == 0 && -n $ID ]]; then
		echo "deploy.sh: step '$STEP' failed (exit $code) while deploying $ID" >&2
		if rollback; then
			[[ $SWITCHED == 1 ]] && echo "deploy.sh: rolled back to $PREVIOUS; step '$STEP' failed" >&2
		else
			echo "deploy.sh: ROLLBACK INCOMPLETE after step '$STEP' failed: check \`blazzctl health\`" >&2
		fi
		exit 1
	fi
	exit "$code"
}

# --- the plan ------------------------------------------------------------------------------------

dry_run() {
	local n count=$INSTANCES found
	if [[ -z $count ]]; then
		for found in "$PREFIX/current/venv/bin/blazzctl" "$(command -v blazzctl || true)"; do
			if [[ -n $found && -x $found ]] && count=$(configured_instances "$found" 2>/dev/null); then
				break
			fi
			count=""
		done
	fi
	local reuse=""
	[[ ! -f $PREFIX/releases/$ID/.complete ]] || reuse=" (installed already: reused)"
	echo "plan: release $ID: $PREFIX/releases/$ID, a virtualenv with ${WHEEL:-the checkout $SOURCE}$reuse"
	echo "plan: db upgrade"
	echo "plan: units install: --instances ${count:-N} --prefix $PREFIX --user $SERVICE_USER --dest $UNIT_DIR"
	echo "plan: switch current: $PREFIX/current -> releases/$ID (now: $(readlink "$PREFIX/current" 2>/dev/null || echo none))"
	if [[ -n $count ]]; then
		for ((n = 1; n <= count; n++)); do echo "plan: restart blazz-session@$n"; done
	else
		echo "plan: restart blazz-session@1 .. blazz-session@N, one at a time (N = daemon.instances)"
	fi
	echo "plan: health: blazzctl health --wait $HEALTH_WAIT"
	echo "plan: prune: keep the newest $KEEP releases"
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
