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
