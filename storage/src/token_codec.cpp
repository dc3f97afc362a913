#include "token_codec.h"

#include "sqlite_db.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace dsv2::storage::detail {

std::uint16_t floatToHalf(float value) {
    std::uint32_t x = 0;
    std::memcpy(&x, &value, sizeof x);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t exponent = (x >> 23) & 0xffu;
    std::uint32_t mantissa = x & 0x7fffffu;
    if (exponent == 0xff) {  // Inf / NaN (keep NaN a NaN)
        return static_cast<std::uint16_t>(sign | 0x7c00u | (mantissa ? 0x200u | (mantissa >> 13) : 0u));
    }
    const int e = static_cast<int>(exponent) - 127 + 15;
    if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow: Inf
    if (e <= 0) {                                                      // half subnormal or zero
        if (e < -10) return static_cast<std::uint16_t>(sign);
        mantissa |= 0x800000u;
        const int shift = 14 - e;
        std::uint32_t half = mantissa >> shift;
        const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
        const std::uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
        return static_cast<std::uint16_t>(sign | half);
    }
    std::uint32_t half = (static_cast<std::uint32_t>(e) << 10) | (mantissa >> 13);
    const std::uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // a carry into the exponent is right
    return static_cast<std::uint16_t>(sign | half);
}

float halfToFloat(std::uint16_t half) {
    const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
    std::uint32_t exponent = (half >> 10) & 0x1fu;
    std::uint32_t mantissa = half & 0x3ffu;
    std::uint32_t x = 0;
    if (exponent == 0) {
        if (mantissa == 0) {
            x = sign;
        } else {  // subnormal: normalise
            int shifts = 0;
            while (!(mantissa & 0x400u)) {
                mantissa <<= 1;
                ++shifts;
            }
            mantissa &= 0x3ffu;
            x = sign | (static_cast<std::uint32_t>(113 - shifts) << 23) | (mantissa << 13);
        }
    } else if (exponent == 31) {
        x = sign | 0x7f800000u | (mantissa << 13);
    } else {
        x = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float value = 0.0f;
    std::memcpy(&value, &x, sizeof value);
    return value;
}

namespace {

class Writer {
public:
    explicit Writer(std::vector<std::uint8_t>& out) : m_out(out) {}
    void u8(std::uint8_t v) { m_out.push_back(v); }
    void u16(std::uint16_t v) {
        m_out.push_back(static_cast<std::uint8_t>(v));
        m_out.push_back(static_cast<std::uint8_t>(v >> 8));
    }
    void u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) m_out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
    void f32(float v) {
        std::uint32_t x = 0;
        std::memcpy(&x, &v, sizeof x);
        u32(x);
    }
    void bytes(const std::string& s) { m_out.insert(m_out.end(), s.begin(), s.end()); }

private:
    std::vector<std::uint8_t>& m_out;
};

class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> in) : m_in(in) {}
    std::uint8_t u8() {
        need(1);
        return m_in[m_pos++];
    }
    std::uint16_t u16() {
        need(2);
        const auto v = static_cast<std::uint16_t>(m_in[m_pos] | (m_in[m_pos + 1] << 8));
        m_pos += 2;
        return v;
    }
    std::uint32_t u32() {
        need(4);
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(m_in[m_pos + i]) << (8 * i);
        m_pos += 4;
        return v;
    }
    std::int32_t i32() { return static_cast<std::int32_t>(u32()); }
    float f32() {
        const std::uint32_t x = u32();
        float v = 0.0f;
        std::memcpy(&v, &x, sizeof v);
        return v;
    }
    std::string bytes(std::size_t n) {
        need(n);
        std::string s(reinterpret_cast<const char*>(m_in.data() + m_pos), n);
        m_pos += n;
        return s;
    }
    bool atEnd() const { return m_pos == m_in.size(); }

private:
    void need(std::size_t n) const {
        if (m_in.size() - m_pos < n) {
            throwError(ErrorCode::InvalidData,
                       fmt::format("a stored token record is cut short (needs {} more bytes at offset {} of {})", n,
                                   m_pos, m_in.size()));
        }
    }
    std::span<const std::uint8_t> m_in;
    std::size_t m_pos = 0;
};

}  // namespace

std::size_t encodedSize(const TokenRecord& token) {
    std::size_t size = 4 + 4 + 4 + 1 + (token.logprob ? 4 : 0) + 1 + 2 + 1;
    for (const auto& top : token.topLogprobs) size += 4 + 4 + 2 + std::min<std::size_t>(top.text.size(), 0xffff);
    size += token.expertIds.size() * 2 + token.expertWeights.size() * 2;
    return size;
}

std::vector<std::uint8_t> encodeTokenRecords(std::span<const TokenRecord> tokens) {
    bool smallIds = true;
    std::size_t total = 6;
    for (const auto& t : tokens) {
        total += encodedSize(t);
        for (auto id : t.expertIds) smallIds = smallIds && id <= 0xff;
    }
    std::vector<std::uint8_t> out;
    out.reserve(total);
    Writer w(out);
    w.u8(kTokenBlobVersion);
    w.u8(smallIds ? 1 : 0);
    w.u32(static_cast<std::uint32_t>(tokens.size()));
    for (const auto& t : tokens) {
        w.i32(t.tokenId);
        w.u32(t.textOffset);
        w.u32(t.textLength);
        w.u8(t.logprob ? 1 : 0);
        if (t.logprob) w.f32(*t.logprob);
        const auto topCount = std::min<std::size_t>(t.topLogprobs.size(), 0xff);
        w.u8(static_cast<std::uint8_t>(topCount));
        for (std::size_t i = 0; i < topCount; ++i) {
            const auto& top = t.topLogprobs[i];
            w.i32(top.tokenId);
            w.f32(top.logprob);
            const std::string text = top.text.substr(0, 0xffff);
            w.u16(static_cast<std::uint16_t>(text.size()));
            w.bytes(text);
        }
        // A record whose routing arrays do not match its shape keeps no routing (the writer warns).
        const std::size_t n = std::size_t(t.moeLayers) * t.topK;
        const bool routingOk = n > 0 && t.expertIds.size() == n && t.expertWeights.size() == n;
        w.u16(routingOk ? t.moeLayers : 0);
        w.u8(routingOk ? t.topK : 0);
        if (!routingOk) continue;
        for (auto id : t.expertIds) {
            if (smallIds) {
                w.u8(static_cast<std::uint8_t>(id));
            } else {
                w.u16(id);
            }
        }
        for (float weight : t.expertWeights) w.u16(floatToHalf(weight));
    }
    return out;
}

std::vector<TokenRecord> decodeTokenRecords(std::span<const std::uint8_t> blob) {
    Reader r(blob);
    const std::uint8_t version = r.u8();
    if (version != kTokenBlobVersion) {
        throwError(ErrorCode::InvalidData,
                   fmt::format("a stored token record has format version {} (this build reads version {})", version,
                               kTokenBlobVersion));
    }
    const bool smallIds = (r.u8() & 1u) != 0;
    const std::uint32_t count = r.u32();
    // Each record takes at least 21 bytes: refuse absurd counts before reserving memory.
    if (count > blob.size() / 21 + 1) {
        throwError(ErrorCode::InvalidData, fmt::format("a stored token batch claims {} records in {} bytes", count,
                                                       blob.size()));
    }
    std::vector<TokenRecord> tokens(count);
    for (auto& t : tokens) {
        t.tokenId = r.i32();
        t.textOffset = r.u32();
        t.textLength = r.u32();
        if (r.u8()) t.logprob = r.f32();
        const std::uint8_t topCount = r.u8();
        t.topLogprobs.resize(topCount);
        for (auto& top : t.topLogprobs) {
            top.tokenId = r.i32();
            top.logprob = r.f32();
            top.text = r.bytes(r.u16());
        }
        t.moeLayers = r.u16();
        t.topK = r.u8();
        const std::size_t n = std::size_t(t.moeLayers) * t.topK;
        t.expertIds.resize(n);
        for (auto& id : t.expertIds) id = smallIds ? r.u8() : r.u16();
        t.expertWeights.resize(n);
        for (auto& weight : t.expertWeights) weight = halfToFloat(r.u16());
        if (n == 0) {
            t.moeLayers = 0;
            t.topK = 0;
        }
    }
    if (!r.atEnd()) throwError(ErrorCode::InvalidData, "a stored token batch has trailing bytes");
    return tokens;
}

}  // namespace dsv2::storage::detail
