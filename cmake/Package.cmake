# The Debian package: `cpack -G DEB` in the build directory (scripts/package runs it, then
# lintian). Installed into /usr; dependencies come from dpkg-shlibdeps, plus git, which the
# daemon runs.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME gitopper)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "gitopper maintainers <maintainers@users.noreply.r-seed-2955097e.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "GitOps for hosts without Kubernetes")
# The long description (dpkg's short one is the summary above); cpack indents each line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "gitopper watches a git repository and gives each service on the host a
checkout of just its directories, bind-mounted where the service reads its
files (/etc/nginx, /etc/grafana, ...). When upstream changes, it updates them
and reloads the service through systemd, with optional signature, check and
health gates and an automatic rollback.
.
Operators follow rollouts through Prometheus metrics and steer with
gitopperctl over an SSH-key-authenticated API: freeze, unfreeze, pull, roll
back.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "git")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "openssh-client")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
include(CPack)
