#include "remote/npy_array.h"

#include <array>
#include <bit>
#include <cstring>

namespace dsv2::remote {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kMagic{"\x93NUMPY", 6};

static_assert(std::endian::native == std::endian::little, ".npy payloads are written as little endian");

Status bad(const std::string& m) { return Status(StatusCode::InvalidData, "routed experts: " + m); }

template <typename T>
std::string encodeNpy(const std::vector<T>& values, const std::vector<int64_t>& shape, const char* descr) {
    std::string dims;  // NumPy's spelling: "(3,)" for one dimension, "(3, 4)" for more
    for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() == 1) dims += ",";
    std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, then '\n'.
    const size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    std::string out(kMagic);
    out += '\x01';
    out += '\x00';
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>((header.size() >> 8) & 0xff);
    out += header;
    const size_t at = out.size();
    out.resize(at + values.size() * sizeof(T));
    if (!values.empty()) std::memcpy(out.data() + at, values.data(), values.size() * sizeof(T));
    return base64Encode(out);
}

}  // namespace

std::string base64Encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                           uint32_t(uint8_t(bytes[i + 2]));
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (i < bytes.size()) {
        uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
        if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

Result<std::string> base64Decode(std::string_view text) {
    std::array<int, 256> index{};
    index.fill(-1);
    for (int k = 0; k < 64; ++k) index[static_cast<uint8_t>(kAlphabet[k])] = k;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    uint32_t acc = 0;
    int bits = 0;
    size_t padding = 0;
    for (char c : text) {
        if (c == '=') {
            ++padding;
            continue;
        }
        if (padding > 0 || index[static_cast<uint8_t>(c)] < 0)
            return bad("not base64 (unexpected character '" + std::string(1, c) + "')");
        acc = (acc << 6) | static_cast<uint32_t>(index[static_cast<uint8_t>(c)]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    if (padding > 2) return bad("not base64 (too much padding)");
    return out;
}

std::string encodeNpyBase64(const std::vector<int32_t>& values, const std::vector<int64_t>& shape) {
    return encodeNpy(values, shape, "<i4");
}

std::string encodeNpyBase64(const std::vector<float>& values, const std::vector<int64_t>& shape) {
    return encodeNpy(values, shape, "<f4");
}

Result<NpyArray> decodeNpyBase64(std::string_view text) {
    DSV2_ASSIGN_OR_RETURN(std::string bytes, base64Decode(text));
    if (bytes.size() < 10 || std::string_view(bytes).substr(0, 6) != kMagic) return bad("not a .npy payload");
    const int major = static_cast<uint8_t>(bytes[6]);
    size_t headerLen = 0, at = 0;
    if (major == 1) {
        headerLen = size_t(uint8_t(bytes[8])) | (size_t(uint8_t(bytes[9])) << 8);
        at = 10;
    } else if (major == 2 || major == 3) {
        if (bytes.size() < 12) return bad("truncated .npy header");
        headerLen = size_t(uint8_t(bytes[8])) | (size_t(uint8_t(bytes[9])) << 8) | (size_t(uint8_t(bytes[10])) << 16) |
                    (size_t(uint8_t(bytes[11])) << 24);
        at = 12;
    } else {
        return bad(".npy format version " + std::to_string(major) + " is not supported");
    }
    if (bytes.size() < at + headerLen) return bad("truncated .npy header");
    const std::string header = bytes.substr(at, headerLen);
    at += headerLen;

    // The header is a Python dict literal; three keys matter. (Plain string search: std::regex
    // trips GCC 12's -Wmaybe-uninitialized under the sanitizers.)
    NpyArray array;
    auto valueOf = [&](const char* key) -> std::string_view {
        const size_t k = header.find(std::string("'") + key + "'");
        if (k == std::string::npos) return {};
        const size_t colon = header.find(':', k);
        if (colon == std::string::npos) return {};
        size_t from = header.find_first_not_of(' ', colon + 1);
        if (from == std::string::npos) return {};
        const char open = header[from];
        const size_t to = open == '\''  ? header.find('\'', from + 1) + 1
                          : open == '(' ? header.find(')', from) + 1
                                        : header.find_first_of(",}", from);
        if (to == std::string::npos || to == 0 || to <= from) return {};
        return std::string_view(header).substr(from, to - from);
    };
    const std::string_view descr = valueOf("descr");
    if (descr.size() < 3 || descr.front() != '\'') return bad(".npy header has no dtype");
    array.dtype = std::string(descr.substr(1, descr.size() - 2));
    if (valueOf("fortran_order").substr(0, 4) == "True") return bad("Fortran-ordered arrays are not supported");
    const std::string_view dims = valueOf("shape");
    if (dims.empty() || dims.front() != '(') return bad(".npy header has no shape");
    int64_t dim = -1;
    for (char c : dims) {
        if (c >= '0' && c <= '9') {
            dim = (dim < 0 ? 0 : dim * 10) + (c - '0');
        } else if (dim >= 0) {
            array.shape.push_back(dim);
            dim = -1;
        }
    }
    if (array.dtype.empty()) return bad(".npy header has no dtype");

    std::string type = array.dtype;
    if (type[0] == '>') return bad("big-endian arrays are not supported");
    if (type[0] == '<' || type[0] == '|' || type[0] == '=') type = type.substr(1);
    size_t width = 0;
    if (type == "i4" || type == "u4" || type == "f4")
        width = 4;
    else if (type == "i2" || type == "u2")
        width = 2;
    else if (type == "i1" || type == "u1")
        width = 1;
    else if (type == "i8" || type == "f8")
        width = 8;
    else
        return bad("dtype " + array.dtype + " is not supported");

    size_t count = 1;
    for (int64_t d : array.shape) count *= static_cast<size_t>(d);
    if (bytes.size() - at != count * width)
        return bad("the data holds " + std::to_string(bytes.size() - at) + " bytes but the shape needs " +
                   std::to_string(count * width));
    array.values.resize(count);
    const char* p = bytes.data() + at;
    for (size_t i = 0; i < count; ++i, p += width) {
        double v = 0;
        if (type == "i4") {
            int32_t x;
            std::memcpy(&x, p, 4);
            v = x;
        } else if (type == "u4") {
            uint32_t x;
            std::memcpy(&x, p, 4);
            v = x;
        } else if (type == "f4") {
            float x;
            std::memcpy(&x, p, 4);
            v = x;
        } else if (type == "i2") {
            int16_t x;
            std::memcpy(&x, p, 2);
            v = x;
        } else if (type == "u2") {
            uint16_t x;
            std::memcpy(&x, p, 2);
            v = x;
        } else if (type == "i1") {
            int8_t x;
            std::memcpy(&x, p, 1);
            v = x;
        } else if (type == "u1") {
            uint8_t x;
            std::memcpy(&x, p, 1);
            v = x;
        } else if (type == "i8") {
            int64_t x;
            std::memcpy(&x, p, 8);
            v = static_cast<double>(x);
        } else {
            double x;
            std::memcpy(&x, p, 8);
            v = x;
        }
        array.values[i] = v;
    }
    return array;
}

}  // namespace dsv2::remote
