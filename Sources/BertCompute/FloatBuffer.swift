import Foundation

/// An owned, 64-byte aligned, contiguous block of Floats. The unit of storage for parameters,
/// gradients and activations: kernels take its raw pointer, never an Array.
public final class FloatBuffer: @unchecked Sendable {
    /// The first of `count` Floats, 64-byte aligned; valid for the buffer's lifetime.
    public let pointer: UnsafeMutablePointer<Float>
    /// The number of Floats.
    public let count: Int

    /// calloc's block, which `pointer` lies in (aligned up to 64 bytes).
    private let base: UnsafeMutableRawPointer

    /// A zero-filled buffer of `count` Floats.
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count")
        guard let (base, pointer) = Self.allocateZeroed(count) else {
            fatalError("FloatBuffer: out of memory allocating \(count) Floats")
        }
        self.count = count
        self.base = base
        self.pointer = pointer
    }

    /// A zero-filled buffer, or nil when the memory cannot be had (instead of a crash).
    public init?(allocatingZeroed count: Int) {
        guard count >= 0, count <= Int.max / 8, let (base, pointer) = Self.allocateZeroed(count) else { return nil }
        self.count = count
        self.base = base
        self.pointer = pointer
    }

    /// calloc, not memset: a large block comes from fresh pages that the kernel zeroes when they
    /// are first touched, so the parts of a parameter block never written (matrices held in int8
    /// or bf16 instead) take no memory.
    private static func allocateZeroed(_ count: Int) -> (UnsafeMutableRawPointer, UnsafeMutablePointer<Float>)? {
        guard let base = calloc(max(count, 1) + 16, MemoryLayout<Float>.stride) else { return nil }
        let aligned = (Int(bitPattern: base) + 63) & ~63
        let pointer = UnsafeMutableRawPointer(bitPattern: aligned)!.bindMemory(to: Float.self, capacity: max(count, 1))
        return (base, pointer)
    }

    /// A buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { free(base) }

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
