#include "server/admission.hpp"

#include <array>
#include <cstring>
#include <utility>

namespace gitopper {

Admission::Ticket::Ticket(Admission& admission, std::string source)
    : m_admission(&admission), m_source(std::move(source))
{
}

Admission::Ticket::Ticket(Ticket&& other) noexcept
    : m_admission(std::exchange(other.m_admission, nullptr)), m_source(std::move(other.m_source))
{
}

Admission::Ticket& Admission::Ticket::operator=(Ticket&& other) noexcept
{
    if (this != &other) {
        if (m_admission != nullptr) {
            m_admission->release(m_source);
        }
        m_admission = std::exchange(other.m_admission, nullptr);
        m_source = std::move(other.m_source);
    }
    return *this;
}

Admission::Ticket::~Ticket()
{
    if (m_admission != nullptr) {
        m_admission->release(m_source);
    }
}

Admission::Admission(std::size_t per_source, std::size_t total)
    : m_per_source(per_source), m_total(total)
{
}

Result<Admission::Ticket> Admission::admit(const std::string& source)
{
    std::lock_guard lock(m_mutex);
    if (m_count >= m_total) {
        return fail("{} connections open (the limit)", m_count);
    }
    auto& from_source = m_open[source];
    if (from_source >= m_per_source) {
        return fail("{} connections open from {} (the limit)", from_source, source);
    }
    ++from_source;
    ++m_count;
    return Ticket(*this, source);
}

void Admission::release(const std::string& source)
{
    std::lock_guard lock(m_mutex);
    if (auto it = m_open.find(source); it != m_open.end() && --it->second == 0) {
        m_open.erase(it); // the map holds only sources with open connections
    }
    if (--m_count == 0) {
        m_idle.notify_all();
    }
}

std::size_t Admission::open() const
{
    std::lock_guard lock(m_mutex);
    return m_count;
}

std::size_t Admission::open_from(const std::string& source) const
{
    std::lock_guard lock(m_mutex);
    const auto it = m_open.find(source);
    return it == m_open.end() ? 0 : it->second;
}

void Admission::wait_until_idle()
{
    std::unique_lock lock(m_mutex);
    m_idle.wait(lock, [this] { return m_count == 0; });
}

} // namespace gitopper
