# dist.cmake - what ships beside the binaries, included at the end of the
# top CMakeLists.txt: the man pages (docs/man/*.scd, built with scdoc when
# it is found), bash completion for clusterctl, logrotate and tmpfiles.d
# entries; and the tests that keep them true: man_keys (clusterd.ini(5)
# names every config key the code has, and no other), completion (the
# completion script answers what it should) and package (builds, installs,
# runs and purges the Debian packages; only with CD_PACKAGE_TEST=1, as
# root).

# Man pages: NAME.SECTION.scd -> NAME.SECTION, installed in manSECTION.
find_program(SCDOC scdoc)
file(GLOB CD_MAN_SRCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/*.scd)
if(SCDOC)
  set(CD_MAN_PAGES "")
  foreach(src ${CD_MAN_SRCS})
    get_filename_component(page ${src} NAME)
    string(REGEX REPLACE "\\.scd$" "" page ${page})
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    set(out ${CMAKE_BINARY_DIR}/man/${page})
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND sh -c "\"$0\" < \"$1\" > \"$2\"" ${SCDOC} ${src} ${out}
      DEPENDS ${src}
      COMMENT "scdoc ${page}"
      VERBATIM)
    list(APPEND CD_MAN_PAGES ${out})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${CD_MAN_PAGES})
else()
  message(STATUS "scdoc not found: the man pages (docs/man) are not built")
endif()

# Bash completion, logrotate (with the installed paths), tmpfiles.d.
configure_file(${CMAKE_SOURCE_DIR}/dist/clusterd.logrotate ${CMAKE_BINARY_DIR}/clusterd.logrotate @ONLY)
install(FILES dist/clusterctl.bash-completion
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME clusterctl)
install(FILES ${CMAKE_BINARY_DIR}/clusterd.logrotate
  DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/logrotate.d RENAME clusterd)
install(FILES dist/clusterd.tmpfiles DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/tmpfiles.d RENAME clusterd.conf)

if(CD_TESTS)
  # conf_keys prints every key of every table; check_keys.sh compares them
  # (and their defaults) with clusterd.ini(5).
  add_executable(cd_conf_keys tests/man/conf_keys.c)
  target_compile_options(cd_conf_keys PRIVATE ${CD_WARN})
  target_link_libraries(cd_conf_keys PRIVATE clusterd_lib)
  foreach(mod ${CD_MODULES})
    target_link_libraries(cd_conf_keys PRIVATE cd_${mod}_obj)
  endforeach()
  set_target_properties(cd_conf_keys PROPERTIES ENABLE_EXPORTS ON)
  add_test(NAME man_keys COMMAND ${CMAKE_SOURCE_DIR}/tests/man/check_keys.sh
    $<TARGET_FILE:cd_conf_keys> ${CMAKE_SOURCE_DIR}/docs/man/clusterd.ini.5.scd)
  set_tests_properties(man_keys PROPERTIES TIMEOUT 60)

  add_test(NAME completion COMMAND bash ${CMAKE_SOURCE_DIR}/tests/dist/completion.sh
    ${CMAKE_SOURCE_DIR}/dist/clusterctl.bash-completion)
  set_tests_properties(completion PROPERTIES TIMEOUT 60)

  # Builds the .debs in a copy of the tree, installs, runs, purges: minutes,
  # and it changes the machine (as root), so it runs only where asked
  # (CD_PACKAGE_TEST=1 in ctest's environment, as test.sh sets it on CI);
  # elsewhere it reports itself skipped, saying so.
  add_test(NAME package COMMAND ${CMAKE_SOURCE_DIR}/scripts/package-test.sh)
  set_tests_properties(package PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77)
endif()
