# bash completion for vmctl. Source it, or install it as
# /usr/share/bash-completion/completions/vmctl.
_vmctl_names() {
  # The "name" fields of a `vmctl ... --json` listing.
  vmctl "$@" --json 2>/dev/null | tr ',' '\n' | sed -n 's/.*"name":"\([^"]*\)".*/\1/p'
}

_vmctl() {
  local current previous verbs
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
    datastore)
      case "$COMP_CWORD:$previous" in
        2:*) COMPREPLY=($(compgen -W "list add remove" -- "$current")) ;;
        3:remove) COMPREPLY=($(compgen -W "$(_vmctl_names datastore list)" -- "$current")) ;;
        4:*) COMPREPLY=($(compgen -d -- "$current")) ;;
      esac ;;
    switch)
      case "$COMP_CWORD:$previous" in
        2:*) COMPREPLY=($(compgen -W "list create add remove destroy" -- "$current")) ;;
        3:add|3:remove|3:destroy) COMPREPLY=($(compgen -W "$(_vmctl_names switch list)" -- "$current")) ;;
        4:*) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$current")) ;;
      esac ;;
    iso|img) COMPREPLY=($(compgen -f -- "$current")) ;;
    create)
      case "$previous" in
        -t) COMPREPLY=($(compgen -W "$(ls /var/lib/cellvisor/.templates 2>/dev/null | sed 's/\.conf$//')" -- "$current")) ;;
        -d) COMPREPLY=($(compgen -W "$(_vmctl_names datastore list)" -- "$current")) ;;
        *) COMPREPLY=($(compgen -W "-t -s -c -m -d" -- "$current")) ;;
      esac ;;
    add)
      case "$previous" in
        -d) COMPREPLY=($(compgen -W "disk network" -- "$current")) ;;
        -s) COMPREPLY=($(compgen -W "$(_vmctl_names switch list)" -- "$current")) ;;
        *) COMPREPLY=($(compgen -W "-d -s $(_vmctl_names list)" -- "$current")) ;;
      esac ;;
    start) COMPREPLY=($(compgen -W "-i -f $(_vmctl_names list)" -- "$current")) ;;
    console)
      if [ "$COMP_CWORD" -eq 3 ]; then
        COMPREPLY=($(compgen -W "com1 com2" -- "$current"))
      else
        COMPREPLY=($(compgen -W "$(_vmctl_names list)" -- "$current"))
      fi ;;
    install)
      if [ "$COMP_CWORD" -eq 3 ]; then
        COMPREPLY=($(compgen -W "$(_vmctl_names iso) $(_vmctl_names img)" -- "$current"))
      else
        COMPREPLY=($(compgen -W "$(_vmctl_names list)" -- "$current"))
      fi ;;
    *) COMPREPLY=($(compgen -W "$(_vmctl_names list)" -- "$current")) ;;
  esac
}
complete -F _vmctl vmctl
