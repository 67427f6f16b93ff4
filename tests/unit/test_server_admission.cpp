#include "server/admission.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

sockaddr_storage ipv4(const char* text)
{
    sockaddr_storage storage{};
    auto& address = reinterpret_cast<sockaddr_in&>(storage);
    address.sin_family = AF_INET;
    ::inet_pton(AF_INET, text, &address.sin_addr);
    return storage;
}

sockaddr_storage ipv6(const char* text)
{
    sockaddr_storage storage{};
    auto& address = reinterpret_cast<sockaddr_in6&>(storage);
    address.sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, text, &address.sin6_addr);
    return storage;
}

} // namespace

TEST(Admission, CapsEachSourceAndLeavesOthersTheirSlots)
{
    Admission admission(2, 10);
    std::vector<Admission::Ticket> held;
    for (int i = 0; i < 2; ++i) {
        auto ticket = admission.admit("127.0.0.2");
        ASSERT_TRUE(ticket) << ticket.error().message;
        held.push_back(std::move(*ticket));
    }
    auto refused = admission.admit("127.0.0.2");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "2 connections open from 127.0.0.2 (the limit)");
    EXPECT_TRUE(admission.admit("127.0.0.1")) << "another source is not affected";
    EXPECT_EQ(admission.open_from("127.0.0.2"), 2U);

    held.pop_back();
    EXPECT_EQ(admission.open_from("127.0.0.2"), 1U);
    EXPECT_TRUE(admission.admit("127.0.0.2")) << "a released slot can be taken again";
}

TEST(Admission, CapsTheTotal)
{
    Admission admission(5, 3);
    std::vector<Admission::Ticket> held;
    for (const char* source : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
        auto ticket = admission.admit(source);
        ASSERT_TRUE(ticket);
        held.push_back(std::move(*ticket));
    }
    auto refused = admission.admit("10.0.0.4");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "3 connections open (the limit)");
    EXPECT_EQ(admission.open(), 3U);
    held.clear();
    EXPECT_EQ(admission.open(), 0U);
    EXPECT_EQ(admission.open_from("10.0.0.1"), 0U);
}

TEST(Admission, MovedTicketsReleaseOnce)
{
    Admission admission(1, 1);
    auto first = admission.admit("a");
    ASSERT_TRUE(first);
    std::optional<Admission::Ticket> moved(std::move(*first));
    Admission::Ticket assigned = std::move(*moved);
    moved.reset();
    EXPECT_EQ(admission.open(), 1U) << "the moved-from ticket released nothing";
    EXPECT_FALSE(admission.admit("a"));
    {
        auto gone = std::move(assigned);
    }
    EXPECT_EQ(admission.open(), 0U);
    EXPECT_TRUE(admission.admit("a"));
}

TEST(Admission, WaitsUntilTheLastTicketOnAnotherThreadIsGone)
{
    Admission admission(4, 4);
    auto ticket = admission.admit("a");
    ASSERT_TRUE(ticket);
    std::atomic<bool> released{false};
    std::thread worker([&, t = std::move(*ticket)]() mutable {
        released = true;
        auto gone = std::move(t);
    });
    admission.wait_until_idle();
    EXPECT_TRUE(released);
    EXPECT_EQ(admission.open(), 0U);
    worker.join();
}

TEST(Admission, SourceIsTheIpv4AddressOrTheIpv6Slash64)
{
    EXPECT_EQ(source_of(ipv4("127.0.0.2")), "127.0.0.2");
    EXPECT_EQ(source_of(ipv6("::ffff:192.0.2.7")), "192.0.2.7") << "mapped IPv4 is IPv4";
    EXPECT_EQ(source_of(ipv6("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), "2001:db8:1:2::/64");
    EXPECT_EQ(source_of(ipv6("2001:db8:1:2::1")), source_of(ipv6("2001:db8:1:2:ffff::9")))
        << "one host's /64 is one source";
    EXPECT_NE(source_of(ipv6("2001:db8:1:2::1")), source_of(ipv6("2001:db8:1:3::1")));
    EXPECT_EQ(source_of(ipv6("::1")), "::/64");
    sockaddr_storage unix_socket{};
    unix_socket.ss_family = AF_UNIX;
    EXPECT_EQ(source_of(unix_socket), "");
}

TEST(Admission, PeerAddressIsTheWholeAddress)
{
    EXPECT_EQ(peer_address(ipv4("127.0.0.2")), "127.0.0.2");
    EXPECT_EQ(peer_address(ipv6("::ffff:192.0.2.7")), "192.0.2.7");
    EXPECT_EQ(peer_address(ipv6("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
              "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
}
