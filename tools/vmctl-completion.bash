# bash completion for vmctl. Source it, or install it as
# /usr/share/bash-completion/completions/vmctl.
_vmctl() {
  local current previous verbs vms
  current="${COMP_WORDS[COMP_CWORD]}"
  previous="${COMP_WORDS[COMP_CWORD-1]}"
  verbs="init list info create start stop restart reset poweroff destroy devices device console configure add rename clone
    install iso img datastore switch"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "$verbs" -- "$current"))
    return
  fi
  case "${COMP_WORDS[1]}" in
    list) COMPREPLY=($(compgen -W "-v --json" -- "$current")) ;;
    datastore) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "list add remove" -- "$current")) ;;
    switch) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "list create add remove destroy" -- "$current")) ;;
    iso|img) COMPREPLY=($(compgen -f -- "$current")) ;;
    create)
      case "$previous" in
        -t) COMPREPLY=($(compgen -W "$(ls /var/lib/cellvisor/.templates 2>/dev/null | sed 's/\.conf$//')" -- "$current")) ;;
        *) COMPREPLY=($(compgen -W "-t -s -c -m -d" -- "$current")) ;;
      esac ;;
    *)
      vms="$(vmctl list --json 2>/dev/null | tr ',' '\n' | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')"
      COMPREPLY=($(compgen -W "$vms" -- "$current")) ;;
  esac
}
complete -F _vmctl vmctl
