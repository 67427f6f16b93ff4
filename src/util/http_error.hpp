#pragma once
// What went wrong with an HTTP request that got no answer, in words for a log line: httplib's
// own names ("Connection", "Read") say little there.

#include <string>

#include <httplib.h>

namespace gitopper {

std::string http_failure_text(httplib::Error error);

} // namespace gitopper
