#pragma once
// A compact string → id hash table for the 100k-entry vocabularies: open addressing over
// (hash, id) slots, keys living in the caller's id-indexed string table. Builds and looks up
// several times faster than std::unordered_map<std::string, int>, which matters for load time.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace dsv2 {

class StringIdMap {
public:
    // `keys` is indexed by id and must outlive the map (ids must stay valid indices).
    explicit StringIdMap(const std::vector<std::string>* keys = nullptr) : m_keys(keys) {}

    void reserve(size_t count) {
        size_t capacity = 16;
        while (capacity < count * 2) capacity <<= 1;
        m_slots.assign(capacity, Slot{});
        m_mask = capacity - 1;
    }
    void setKeys(const std::vector<std::string>* keys) { m_keys = keys; }

    // Inserts id under (*keys)[id]; keeps the first id for a duplicate key.
    void insert(int32_t id) {
        if ((m_count + 1) * 2 > m_slots.size()) grow();
        place(id, hash((*m_keys)[static_cast<size_t>(id)]), /*skipDuplicate=*/true);
    }

    int32_t find(std::string_view key) const {
        if (m_slots.empty()) return -1;
        const uint32_t h = hash(key);
        for (size_t i = h & m_mask;; i = (i + 1) & m_mask) {
            const Slot& s = m_slots[i];
            if (s.id < 0) return -1;
            if (s.hash == h && (*m_keys)[static_cast<size_t>(s.id)] == key) return s.id;
        }
    }

private:
    struct Slot {
        uint32_t hash = 0;
        int32_t id = -1;
    };

    static uint32_t hash(std::string_view s) { return static_cast<uint32_t>(std::hash<std::string_view>{}(s)); }

    void place(int32_t id, uint32_t h, bool skipDuplicate) {
        const std::string& key = (*m_keys)[static_cast<size_t>(id)];
        for (size_t i = h & m_mask;; i = (i + 1) & m_mask) {
            Slot& s = m_slots[i];
            if (s.id < 0) {
                s = Slot{h, id};
                ++m_count;
                return;
            }
            if (skipDuplicate && s.hash == h && (*m_keys)[static_cast<size_t>(s.id)] == key) return;
        }
    }

    void grow() {
        std::vector<Slot> old = std::move(m_slots);
        m_slots.assign(old.empty() ? 16 : old.size() * 2, Slot{});
        m_mask = m_slots.size() - 1;
        m_count = 0;
        for (const Slot& s : old) {
            if (s.id >= 0) place(s.id, s.hash, false);
        }
    }

    const std::vector<std::string>* m_keys;
    std::vector<Slot> m_slots;
    size_t m_mask = 0;
    size_t m_count = 0;
};

}  // namespace dsv2
