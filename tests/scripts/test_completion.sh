#!/bin/bash
# contrib/bash-completion/imgaudit: sourced into bash, it completes the
# subcommands, every option each subcommand's help lists (so the two cannot
# drift apart), and the values options take, in both the "--opt=VALUE" and
# the "--opt VALUE" forms, with '=' breaking words as bash does by default.
. "$(dirname "$0")/lib.sh"
lib_workdir completion

# shellcheck source=/dev/null
. "$SOURCE_DIR/contrib/bash-completion/imgaudit" && ok || bad "the completion file does not source"
complete -p imgaudit 2>/dev/null | grep -q -- '-F _imgaudit imgaudit' && ok || bad "no completion registered for imgaudit"
# comp WORD...: what completing the last word offers, sorted, on one line
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMP_LINE="$*"
	COMPREPLY=()
	_imgaudit 2>/dev/null
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

eq "subcommands" "$(comp imgaudit '')" "help map pg-migrate prune push report scan"
eq "a subcommand by prefix" "$(comp imgaudit re)" "report"
eq "top-level options" "$(comp imgaudit --)" "--help --version"
eq "help COMMAND" "$(comp imgaudit help '')" "map pg-migrate prune push report scan"
eq "scan --j" "$(comp imgaudit scan --j)" "--jobs --json"
eq "report --f" "$(comp imgaudit report --f)" "--format="
eq "options after other words" "$(comp imgaudit scan --db x.db --qu)" "--quiet"

# every option a subcommand's help lists is completed
for c in map scan report prune push pg-migrate; do
	offered=$(comp imgaudit "$c" -- | tr ' ' '\n' | sed 's/=$//' | sort -u)
	for o in $("$IMGAUDIT" help "$c" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		grep -qx -- "$o" <<<"$offered" && ok || bad "$c: help lists $o, completion does not"
	done
done

# values, "--opt=VALUE" with '=' a word of its own (bash's default), in one
# word, and "--opt VALUE"
eq "report --format=" "$(comp imgaudit report --format = '')" "csv html human json prometheus"
eq "report --format=j" "$(comp imgaudit report --format = j)" "json"
eq "report --format=p (one word)" "$(comp imgaudit report --format=p)" "prometheus"
eq "report --format VALUE" "$(comp imgaudit report --format h)" "html human"
eq "report --section=" "$(comp imgaudit report --section = '' | wc -w)" "7"
eq "report --section=summary,c" "$(comp imgaudit report --section = summary,c)" "summary,capacity summary,chains"
eq "report --section=summary,chains,s (no repeat)" "$(comp imgaudit report --section = summary,chains,s)" "summary,chains,sharing"
eq "report --since" "$(comp imgaudit report --since 7)" "7d"
eq "map --output=" "$(comp imgaudit map --output = '')" "human json"
eq "map -f q" "$(comp imgaudit map -f q)" "qcow qcow2 qed"
eq "map --qemu-compat=10" "$(comp imgaudit map --qemu-compat = 10)" "10.0 10.1 10.2"

# files and directories
mkdir -p store/vms
: >store.db
: >stats.txt
eq "scan ROOT" "$(comp imgaudit scan st)" "stats.txt store store.db"
eq "scan --db FILE" "$(comp imgaudit scan --db store.)" "store.db"
eq "scan --allow-root DIR" "$(comp imgaudit scan --allow-root st)" "store"
eq "map --allow-root=DIR" "$(comp imgaudit map --allow-root = st)" "store"
eq "report -o FILE" "$(comp imgaudit report -o sta)" "stats.txt"
eq "map FILE" "$(comp imgaudit map store/)" "store/vms"

lib_summary test_completion
