# Sourced by the build scripts: the one definition of pyphys's cache directory in shell
# (pyphys.paths.cache_dir is the same rule for Python): PYPHYS_CACHE, else $XDG_CACHE_HOME/pyphys,
# else ~/.cache/pyphys. Kernels, module builds and VM shares live there, outside the repo.
pyphys_cache_dir() {
    printf '%s\n' "${PYPHYS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyphys}"
}
