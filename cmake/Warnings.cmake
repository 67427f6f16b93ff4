# Compile options for our own targets only, linked PRIVATE so dependants don't inherit them.
add_library(gitopper_options INTERFACE)
target_compile_options(gitopper_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion -Wno-missing-field-initializers
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(GITOPPER_SANITIZE)
  target_compile_options(gitopper_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(gitopper_options INTERFACE -fsanitize=address,undefined)
endif()
if(GITOPPER_FUZZ)
  # libFuzzer's coverage hooks in all our code; fuzz/ links the fuzzer itself.
  target_compile_options(gitopper_options INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  target_link_options(gitopper_options INTERFACE -fsanitize=address,undefined)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 16
   AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 19)
  # libstdc++ 12 hides <expected> unless __cpp_concepts >= 202002L (P0848, conditionally
  # trivial special members). Clang 16 to 18 implement P0848 but still report 201907L, so we
  # raise the macro ourselves; redefining a predefined macro warns, hence -Wno-macro-redefined.
  target_compile_options(gitopper_options INTERFACE -Wno-macro-redefined -D__cpp_concepts=202002L)
endif()
