#pragma once
// Routing as CSV and JSON. One writer for the GUI's Export menu and for `dsv2 inspect routing`, so
// both produce byte-identical files. Header-only and Qt-free because the CLI target has no Qt and
// does not link the ui library.
//
// CSV (RFC 4180, UTF-8, "\n" line ends): a header, then one line per routed token and MoE layer:
//   token,source,token_id,text,moe_layer,model_layer,expert_1,weight_1,...,expert_K,weight_K
// Tokens without routing have no lines. JSON (one token per line):
//   {"format":"dsv2-routing","version":1,"messageId":7,"moeLayers":26,"topK":6,"experts":64,
//    "modelLayers":[1,...],"tokens":[
//   {"index":0,"source":"answer","id":791,"text":"The","logprob":-0.11,
//    "alternatives":[{"id":791,"text":"The","logprob":-0.11},...],
//    "experts":[[e1,...,eK],... per layer],"weights":[[w1,...,wK],...]},
//   ...]}
// Floats are the shortest text that reads back to the same float (std::to_chars); a missing or
// non-finite logprob is null. Token text that is not valid UTF-8 (a token that ends inside a
// character) has each bad byte replaced by U+FFFD; the token id is exact.

#include <charconv>
#include <cmath>
#include <ostream>
#include <string>
#include <string_view>

#include "routing_table.h"

namespace dsv2::inspect {

// Valid UTF-8 is copied; every byte that does not start a valid sequence becomes U+FFFD.
inline std::string sanitizeUtf8(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    const auto* s = reinterpret_cast<const unsigned char*>(in.data());
    const std::size_t n = in.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            len = 1;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1Fu;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0Fu;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07u;
        }
        bool ok = len > 0 && i + len <= n;
        for (std::size_t j = 1; ok && j < len; ++j) {
            ok = (s[i + j] & 0xC0) == 0x80;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
        if (ok) {
            ok = !(len == 2 && cp < 0x80) && !(len == 3 && cp < 0x800) && !(len == 4 && cp < 0x10000) &&
                 !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= 0x10FFFF;
        }
        if (ok) {
            out.append(in.substr(i, len));
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

// The shortest decimal text that reads back as the same float ("0.25", "-1.5e-05").
inline std::string formatFloat(float v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

inline std::string csvField(std::string_view raw) {
    const std::string text = sanitizeUtf8(raw);
    if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
    std::string out = "\"";
    for (char c : text) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

inline std::string jsonString(std::string_view raw) {
    const std::string text = sanitizeUtf8(raw);
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                static const char* hex = "0123456789abcdef";
                out += "\\u00";
                out += hex[(c >> 4) & 0xF];
                out += hex[c & 0xF];
            } else {
                out += c;
            }
        }
    }
    return out + '"';
}

inline std::string jsonFloat(std::optional<float> v) {
    if (!v || !std::isfinite(*v)) return "null";
    return formatFloat(*v);
}

inline const char* tokenSource(const TokenRow& row) { return row.isPrompt ? "prompt" : "answer"; }

inline void writeRoutingCsv(const RoutingTable& table, std::ostream& out) {
    out << "token,source,token_id,text,moe_layer,model_layer";
    for (int k = 1; k <= table.topK; ++k) out << ",expert_" << k << ",weight_" << k;
    out << '\n';
    for (int t = 0; t < table.tokenCount(); ++t) {
        const TokenRow& row = table.rows[static_cast<std::size_t>(t)];
        if (!row.hasRouting() || !table.fits(row)) continue;
        const std::string text = csvField(row.text);
        for (int l = 0; l < table.layers; ++l) {
            out << t << ',' << tokenSource(row) << ',' << row.tokenId << ',' << text << ',' << l << ','
                << table.modelLayer(l);
            for (int k = 0; k < table.topK; ++k) {
                out << ',' << table.expertAt(t, l, k) << ',' << formatFloat(table.weightAt(t, l, k));
            }
            out << '\n';
        }
    }
}

inline void writeRoutingJson(const RoutingTable& table, std::ostream& out) {
    out << "{\"format\":\"dsv2-routing\",\"version\":1,\"messageId\":" << table.messageId
        << ",\"moeLayers\":" << table.layers << ",\"topK\":" << table.topK << ",\"experts\":" << table.expertCount()
        << ",\"modelLayers\":[";
    for (int l = 0; l < table.layers; ++l) out << (l ? "," : "") << table.modelLayer(l);
    out << "],\"tokens\":[";
    for (int t = 0; t < table.tokenCount(); ++t) {
        const TokenRow& row = table.rows[static_cast<std::size_t>(t)];
        out << (t ? ",\n" : "\n") << "{\"index\":" << t << ",\"source\":\"" << tokenSource(row)
            << "\",\"id\":" << row.tokenId << ",\"text\":" << jsonString(row.text)
            << ",\"logprob\":" << jsonFloat(row.logprob) << ",\"alternatives\":[";
        for (std::size_t a = 0; a < row.alternatives.size(); ++a) {
            const Alternative& alt = row.alternatives[a];
            out << (a ? "," : "") << "{\"id\":" << alt.tokenId << ",\"text\":" << jsonString(alt.text)
                << ",\"logprob\":" << jsonFloat(alt.logprob) << '}';
        }
        out << "],\"experts\":[";
        const bool routed = row.hasRouting() && table.fits(row);
        for (int l = 0; routed && l < table.layers; ++l) {
            out << (l ? ",[" : "[");
            for (int k = 0; k < table.topK; ++k) out << (k ? "," : "") << table.expertAt(t, l, k);
            out << ']';
        }
        out << "],\"weights\":[";
        for (int l = 0; routed && l < table.layers; ++l) {
            out << (l ? ",[" : "[");
            for (int k = 0; k < table.topK; ++k) out << (k ? "," : "") << formatFloat(table.weightAt(t, l, k));
            out << ']';
        }
        out << "]}";
    }
    out << (table.rows.empty() ? "]}\n" : "\n]}\n");
}

}  // namespace dsv2::inspect
