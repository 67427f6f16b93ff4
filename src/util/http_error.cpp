#include "util/http_error.hpp"

#include <array>
#include <utility>

namespace gitopper {

std::string http_failure_text(httplib::Error error)
{
    using E = httplib::Error;
    static const std::array<std::pair<E, const char*>, 7> kTexts{{
        {E::Connection, "cannot connect"},
        {E::ConnectionTimeout, "no connection within the timeout"},
        {E::Read, "no answer within the timeout"},
        {E::Write, "cannot send the request"},
        {E::SSLConnection, "TLS handshake failed"},
        {E::SSLLoadingCerts, "cannot load the CA certificates"},
        {E::SSLServerVerification, "the server's certificate does not verify"},
    }};
    for (const auto& [value, text] : kTexts) {
        if (value == error) {
            return text;
        }
    }
    return httplib::to_string(error);
}

} // namespace gitopper
