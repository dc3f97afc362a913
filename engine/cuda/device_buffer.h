#pragma once
// DeviceBuffer<T>: one cudaMalloc'd array, freed in the destructor; move-only.
// PinnedBuffer<T>: page-locked host memory for asynchronous device->host copies (routing records,
// logits). Both are created through Result-returning factories: allocation failure is a Status
// (ResourceExhausted with the byte count), never an exception.

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "cuda/cuda_check.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

template <typename T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    ~DeviceBuffer() { reset(); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& other) noexcept
        : m_data(std::exchange(other.m_data, nullptr)), m_count(std::exchange(other.m_count, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
        if (this != &other) {
            reset();
            m_data = std::exchange(other.m_data, nullptr);
            m_count = std::exchange(other.m_count, 0);
        }
        return *this;
    }

    // count == 0 gives an empty buffer (data() == nullptr) without touching the driver.
    static Result<DeviceBuffer> allocate(size_t count) {
        DeviceBuffer buffer;
        if (count == 0) return buffer;
        void* ptr = nullptr;
        const cudaError_t err = cudaMalloc(&ptr, count * sizeof(T));
        if (err != cudaSuccess) {
            (void)cudaGetLastError();  // clear the sticky-free error so later calls do not report it
            return Status(err == cudaErrorMemoryAllocation ? StatusCode::ResourceExhausted : StatusCode::Internal,
                          "cudaMalloc of " + std::to_string(count * sizeof(T)) + " bytes failed: " +
                              cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
        }
        buffer.m_data = static_cast<T*>(ptr);
        buffer.m_count = count;
        return buffer;
    }

    void reset() {
        if (m_data) cudaFree(m_data);
        m_data = nullptr;
        m_count = 0;
    }

    T* data() { return m_data; }
    const T* data() const { return m_data; }
    size_t size() const { return m_count; }
    size_t bytes() const { return m_count * sizeof(T); }
    bool empty() const { return m_count == 0; }

    // Synchronous helpers for tests and setup; the hot path uses cudaMemcpyAsync on a stream.
    Status copyFromHost(const T* src, size_t count, size_t offset = 0) {
        if (offset + count > m_count) return Status(StatusCode::OutOfRange, "DeviceBuffer::copyFromHost past the end");
        if (count == 0) return Status::ok();
        DSV2_CUDA_CHECK(cudaMemcpy(m_data + offset, src, count * sizeof(T), cudaMemcpyHostToDevice));
        return Status::ok();
    }
    Status copyToHost(T* dst, size_t count, size_t offset = 0) const {
        if (offset + count > m_count) return Status(StatusCode::OutOfRange, "DeviceBuffer::copyToHost past the end");
        if (count == 0) return Status::ok();
        DSV2_CUDA_CHECK(cudaMemcpy(dst, m_data + offset, count * sizeof(T), cudaMemcpyDeviceToHost));
        return Status::ok();
    }
    Status zero(cudaStream_t stream = nullptr) {
        if (m_count == 0) return Status::ok();
        DSV2_CUDA_CHECK(cudaMemsetAsync(m_data, 0, bytes(), stream));
        return Status::ok();
    }

private:
    T* m_data = nullptr;
    size_t m_count = 0;
};

template <typename T>
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    ~PinnedBuffer() { reset(); }
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    PinnedBuffer(PinnedBuffer&& other) noexcept
        : m_data(std::exchange(other.m_data, nullptr)), m_count(std::exchange(other.m_count, 0)) {}
    PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
        if (this != &other) {
            reset();
            m_data = std::exchange(other.m_data, nullptr);
            m_count = std::exchange(other.m_count, 0);
        }
        return *this;
    }

    static Result<PinnedBuffer> allocate(size_t count) {
        PinnedBuffer buffer;
        if (count == 0) return buffer;
        void* ptr = nullptr;
        DSV2_CUDA_CHECK(cudaMallocHost(&ptr, count * sizeof(T)));
        buffer.m_data = static_cast<T*>(ptr);
        buffer.m_count = count;
        return buffer;
    }

    void reset() {
        if (m_data) cudaFreeHost(m_data);
        m_data = nullptr;
        m_count = 0;
    }

    T* data() { return m_data; }
    const T* data() const { return m_data; }
    size_t size() const { return m_count; }
    size_t bytes() const { return m_count * sizeof(T); }
    T& operator[](size_t i) { return m_data[i]; }
    const T& operator[](size_t i) const { return m_data[i]; }

private:
    T* m_data = nullptr;
    size_t m_count = 0;
};

}  // namespace dsv2::cuda
