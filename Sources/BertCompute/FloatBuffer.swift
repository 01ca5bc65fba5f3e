import Foundation

/// An owned, 64-byte aligned, contiguous block of Floats. The unit of storage for parameters,
/// gradients and activations: kernels take its raw pointer, never an Array.
public final class FloatBuffer: @unchecked Sendable {
    /// The first of `count` Floats, 64-byte aligned; valid for the buffer's lifetime.
    public let pointer: UnsafeMutablePointer<Float>
    /// The number of Floats.
    public let count: Int

    /// A zero-filled buffer of `count` Floats.
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count")
        self.count = count
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, max(count, 1) * MemoryLayout<Float>.stride) == 0, let raw else {
            fatalError("FloatBuffer: out of memory allocating \(count) Floats")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// A zero-filled buffer, or nil when the memory cannot be had (instead of a crash).
    public init?(allocatingZeroed count: Int) {
        guard count >= 0, count <= Int.max / 8 else { return nil }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, max(count, 1) * MemoryLayout<Float>.stride) == 0, let raw else { return nil }
        memset(raw, 0, max(count, 1) * MemoryLayout<Float>.stride)
        self.count = count
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// A buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { free(UnsafeMutableRawPointer(pointer)) }

    /// The Floats as a mutable buffer pointer over `pointer` (no copy); valid for the buffer's lifetime.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// Sets every Float to 0.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// A copy of the contents.
    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// A grow-only scratch buffer: reused across calls so steady-state forwards allocate nothing.
public final class Workspace: @unchecked Sendable {
    private var storage: FloatBuffer = FloatBuffer(count: 0)
    /// An empty workspace; it allocates on the first call to ``floats(_:)``.
    public init() {}
    /// A pointer to at least `count` Floats (contents unspecified).
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if storage.count < count { storage = FloatBuffer(count: count) }
        return storage.pointer
    }
}
