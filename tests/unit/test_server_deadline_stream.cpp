#include "server/deadline_stream.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "util/fd.hpp"

using namespace gitopper;
using namespace std::chrono_literals;
using Clock = DeadlineStream::Clock;

namespace {

// Both ends of a connected stream socket pair and a stop eventfd.
struct Pair {
    Fd server;
    Fd client;
    Fd stop{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};

    Pair()
    {
        std::array<int, 2> fds{};
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()), 0);
        server.reset(fds[0]);
        client.reset(fds[1]);
    }

    void send(const std::string& text) const
    {
        ASSERT_EQ(::send(client.get(), text.data(), text.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(text.size()));
    }
};

DeadlineStream::Limits limits(std::chrono::milliseconds read, std::chrono::milliseconds write,
                              std::size_t budget = 1 << 20)
{
    const auto now = Clock::now();
    return {now + read, now + write, budget};
}

std::string read_all(DeadlineStream& stream)
{
    std::string text;
    std::array<char, 3> buffer{}; // smaller than what arrives: reads come from the buffer
    for (ssize_t n; (n = stream.read(buffer.data(), buffer.size())) > 0;) {
        text.append(buffer.data(), static_cast<std::size_t>(n));
    }
    return text;
}

double seconds_since(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

} // namespace

TEST(DeadlineStream, ReadsWhatArrivesUntilTheClientCloses)
{
    Pair pair;
    DeadlineStream stream(pair.server.get(), pair.stop.get(), limits(5s, 5s));
    pair.send("GET / HTTP/1.1\r\n\r\n");
    pair.client.reset();
    EXPECT_EQ(read_all(stream), "GET / HTTP/1.1\r\n\r\n");
    std::array<char, 8> buffer{};
    EXPECT_EQ(stream.read(buffer.data(), buffer.size()), 0) << "end of stream, as recv says it";
    EXPECT_FALSE(stream.cut_off());
}

TEST(DeadlineStream, CutsOffATrickleAtTheReadDeadlineNotPerByte)
{
    Pair pair;
    const auto start = Clock::now();
    DeadlineStream stream(pair.server.get(), pair.stop.get(), limits(400ms, 5s));
    std::thread trickle([&] {
        // A byte every 50 ms: never quiet long enough for a per-recv timeout.
        for (int i = 0; i < 40 && ::send(pair.client.get(), "a", 1, MSG_NOSIGNAL) == 1; ++i) {
            std::this_thread::sleep_for(50ms);
        }
    });
    const auto got = read_all(stream);
    const auto elapsed = seconds_since(start);
    ::shutdown(pair.server.get(), SHUT_RDWR); // ends the trickle
    trickle.join();
    EXPECT_TRUE(stream.cut_off());
    EXPECT_GE(elapsed, 0.39);
    EXPECT_LT(elapsed, 1.0) << "the trickle went on for 2 s";
    EXPECT_GE(got.size(), 2U);
}

TEST(DeadlineStream, ReadsNoMoreThanTheBudgetUntilAllowedMore)
{
    Pair pair;
    DeadlineStream stream(pair.server.get(), pair.stop.get(), limits(200ms, 5s, 10));
    pair.send(std::string(100, 'x'));
    EXPECT_EQ(read_all(stream).size(), 10U);
    EXPECT_TRUE(stream.cut_off());
    stream.allow(25);
    EXPECT_EQ(read_all(stream).size(), 25U);
}

TEST(DeadlineStream, StopEndsAWaitAtOnce)
{
    Pair pair;
    DeadlineStream stream(pair.server.get(), pair.stop.get(), limits(30s, 30s));
    const auto start = Clock::now();
    std::thread stopper([&] {
        std::this_thread::sleep_for(100ms);
        const std::uint64_t one = 1;
        EXPECT_EQ(::write(pair.stop.get(), &one, sizeof one), 8);
    });
    std::array<char, 8> buffer{};
    EXPECT_EQ(stream.read(buffer.data(), buffer.size()), -1);
    stopper.join();
    EXPECT_TRUE(stream.cut_off());
    EXPECT_LT(seconds_since(start), 5.0);
}

TEST(DeadlineStream, WritesTimeOutWhenTheClientDoesNotRead)
{
    Pair pair;
    const auto start = Clock::now();
    DeadlineStream stream(pair.server.get(), pair.stop.get(), limits(5s, 300ms));
    const std::string chunk(64 << 10, 'y');
    ssize_t n = 0;
    for (int i = 0; i < 1000 && (n = stream.write(chunk.data(), chunk.size())) > 0; ++i) {
    }
    EXPECT_EQ(n, -1) << "the socket buffer never filled";
    EXPECT_TRUE(stream.cut_off());
    EXPECT_GE(seconds_since(start), 0.29);
    EXPECT_LT(seconds_since(start), 3.0);
}

TEST(DeadlineStream, LingerDropsWhatTheClientStillSendsUntilItCloses)
{
    Pair pair;
    DeadlineStream stream(pair.server.get(), pair.stop.get(), limits(5s, 5s));
    std::thread client([&] {
        std::array<char, 16> buffer{};
        // Our side's end arrives first; the client still sends, then closes.
        EXPECT_EQ(::recv(pair.client.get(), buffer.data(), buffer.size(), 0), 0);
        pair.send(std::string(100000, 'z'));
        pair.client.reset();
    });
    const auto start = Clock::now();
    stream.linger(Clock::now() + 10s);
    client.join();
    EXPECT_LT(seconds_since(start), 5.0) << "linger waited for its limit, not the close";
}

TEST(DeadlineStream, LingerEndsAtItsLimit)
{
    Pair pair;
    DeadlineStream stream(pair.server.get(), pair.stop.get(), limits(5s, 5s));
    const auto start = Clock::now();
    stream.linger(Clock::now() + 200ms); // the client never closes
    EXPECT_GE(seconds_since(start), 0.19);
    EXPECT_LT(seconds_since(start), 2.0);
}
