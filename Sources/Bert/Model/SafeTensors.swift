// Reading and writing the safetensors checkpoint format.
//
// Layout: 8 bytes little-endian UInt64 N, then N bytes of UTF-8 JSON (an object, possibly
// padded with trailing spaces), then the data buffer. The JSON maps each tensor name to
// {"dtype": ..., "shape": [...], "data_offsets": [begin, end]} with offsets relative to the
// start of the data buffer (byte 8 + N), plus an optional "__metadata__" string map.
//
// The reader validates the whole header up front and never traps on malformed input: every
// problem is reported as a `SafeTensorsError`. Tensor bytes are read in place from the
// (memory-mapped) file; they may be unaligned, so all loads are unaligned little-endian loads.

import Foundation
import BertTokenizer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Types

/// The element types understood by this reader and writer.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    /// IEEE 754 double precision, 8 bytes.
    case F64
    /// IEEE 754 single precision, 4 bytes.
    case F32
    /// IEEE 754 half precision, 2 bytes.
    case F16
    /// bfloat16 (the upper half of a Float32), 2 bytes.
    case BF16
    /// Signed 64-bit integer.
    case I64
    /// Signed 32-bit integer.
    case I32
    /// Signed 16-bit integer.
    case I16
    /// Signed 8-bit integer.
    case I8
    /// Unsigned 8-bit integer.
    case U8
    /// Boolean, one byte each.
    case BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }
}

/// One tensor's entry in the header.
public struct SafeTensorInfo: Sendable, Equatable {
    /// The tensor's name (its key in the header).
    public let name: String
    /// The element type.
    public let dtype: SafeTensorsDType
    /// An empty shape is a scalar (one element).
    public let shape: [Int]
    /// Byte range relative to the start of the data buffer.
    public let byteRange: Range<Int>

    /// Product of the shape (1 for a scalar). Validated not to overflow when read.
    public var elementCount: Int { shape.reduce(1, *) }

    /// An entry as given: nothing is checked here (the reader validates what it reads).
    public init(name: String, dtype: SafeTensorsDType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }
}

/// Any problem reading or writing a safetensors file.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    /// The file path (or the name given to `SafeTensorsFile(data:name:)`).
    public let file: String
    /// What is wrong, in words for people.
    public let message: String

    /// An error about `file`.
    public init(file: String, message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

// MARK: - Reader

/// A validated safetensors file whose tensor bytes are read in place.
public final class SafeTensorsFile: Sendable {
    /// Largest header accepted (the reference implementation uses the same limit).
    public static let maxHeaderSize = 100_000_000

    /// The file path or the name given at creation; used in error messages.
    public let name: String
    /// All tensors, sorted by data offset (ties by end offset, then name).
    public let tensors: [SafeTensorInfo]
    /// The "__metadata__" map (empty when absent).
    public let metadata: [String: String]

    /// The memory holding the tensors' bytes: one file's, or several (the shards of a checkpoint).
    private let backings: [Data]
    /// Per tensor: its backing and where its byte range starts counting in it (for a safetensors
    /// file, 8 + the header length).
    private let backingOf: [Int]
    private let origins: [Int]
    private let index: [String: Int]

    /// Memory-maps the file at `url` and validates its header and layout.
    public convenience init(contentsOf url: URL) throws {
        let bytes: Data
        do {
            bytes = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(
                file: url.path, message: "cannot read file: \(fileErrorReason(error, path: url.path))")
        }
        try self.init(data: bytes, name: url.path)
    }

    /// Parses and validates a safetensors image held in memory. `name` is used in error messages.
    public init(data: Data, name: String) throws {
        func fail(_ message: String) -> SafeTensorsError {
            SafeTensorsError(file: name, message: message)
        }
        let total = data.count
        guard total >= 8 else {
            throw fail("truncated: the file is \(total) bytes, shorter than the 8-byte header length prefix")
        }
        let rawLength: UInt64 = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard rawLength <= UInt64(total - 8) else {
            throw fail(
                "truncated: header length \(rawLength) runs past the end of the file (\(total - 8) bytes after the "
                    + "length prefix)"
            )
        }
        let headerLength = Int(rawLength)
        guard headerLength <= SafeTensorsFile.maxHeaderSize else {
            throw fail("header length \(headerLength) exceeds the limit of \(SafeTensorsFile.maxHeaderSize) bytes")
        }
        let dataStart = 8 + headerLength
        let bufferLength = total - dataStart

        let headerBytes = data.withUnsafeBytes { Data($0[8..<dataStart]) }
        guard SafeTensorsFile.isValidUTF8(headerBytes) else {
            throw fail("header is not valid UTF-8")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes, options: [])
        } catch {
            throw fail("header is not valid JSON: \(error.localizedDescription)")
        }
        guard let object = json as? [String: Any] else {
            throw fail("header JSON is not an object")
        }

        var metadata: [String: String] = [:]
        var infos: [SafeTensorInfo] = []
        infos.reserveCapacity(object.count)
        for key in object.keys.sorted() {  // sorted: the same file always reports the same first problem
            let value = object[key]!
            if key == "__metadata__" {
                if value is NSNull { continue }
                guard let map = value as? [String: Any] else {
                    throw fail("\"__metadata__\" is not an object")
                }
                for (k, v) in map {
                    guard let s = v as? String else {
                        throw fail("\"__metadata__\" value for key \"\(k)\" is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            infos.append(try SafeTensorsFile.parseEntry(key, value, bufferLength: bufferLength, fail: fail))
        }

        infos.sort {
            if $0.byteRange.lowerBound != $1.byteRange.lowerBound {
                return $0.byteRange.lowerBound < $1.byteRange.lowerBound
            }
            if $0.byteRange.upperBound != $1.byteRange.upperBound {
                return $0.byteRange.upperBound < $1.byteRange.upperBound
            }
            return Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8))
        }

        // The tensors must tile the data buffer exactly: no overlaps, no gaps, no unused bytes.
        var position = 0
        var previous: SafeTensorInfo?
        for info in infos {
            let begin = info.byteRange.lowerBound
            if begin < position, let prev = previous {
                throw fail(
                    "tensors '\(prev.name)' (bytes \(prev.byteRange.lowerBound)..<\(prev.byteRange.upperBound)) and "
                        + "'\(info.name)' (bytes \(begin)..<\(info.byteRange.upperBound)) overlap"
                )
            }
            if begin > position {
                if let prev = previous {
                    throw fail(
                        "gap of \(begin - position) unused bytes between tensors '\(prev.name)' (ends at "
                            + "\(position)) and '\(info.name)' (starts at \(begin)); the reference safetensors "
                            + "library rejects such files"
                    )
                } else {
                    throw fail(
                        "gap of \(begin) unused bytes at the start of the data buffer before tensor '\(info.name)'; "
                            + "the reference safetensors library rejects such files"
                    )
                }
            }
            position = info.byteRange.upperBound
            previous = info
        }
        if position != bufferLength {
            throw fail(
                "\(bufferLength - position) unused bytes at the end of the data buffer (tensors end at \(position), "
                    + "buffer is \(bufferLength) bytes); the reference safetensors library rejects such files"
            )
        }

        var index: [String: Int] = [:]
        index.reserveCapacity(infos.count)
        for (i, info) in infos.enumerated() { index[info.name] = i }

        self.name = name
        self.backings = [data]
        self.backingOf = [Int](repeating: 0, count: infos.count)
        self.origins = [Int](repeating: dataStart, count: infos.count)
        self.tensors = infos
        self.metadata = metadata
        self.index = index
    }

    /// Tensors found in `data` by another reader (a PyTorch checkpoint's storages): byte ranges
    /// are offsets in `data`, already checked to lie inside it; they may overlap (tied weights).
    init(name: String, data: Data, tensors: [SafeTensorInfo], metadata: [String: String] = [:]) {
        self.name = name
        self.backings = [data]
        self.backingOf = [Int](repeating: 0, count: tensors.count)
        self.origins = [Int](repeating: 0, count: tensors.count)
        self.tensors = tensors
        self.metadata = metadata
        var index: [String: Int] = [:]
        for (i, info) in tensors.enumerated() { index[info.name] = i }
        self.index = index
    }

    /// The tensors of several files (the shards of one checkpoint) as one, under `name`. A tensor
    /// name in two shards is an error: the checkpoint would not say which one it means.
    public init(merging shards: [SafeTensorsFile], name: String) throws {
        var backings: [Data] = [], backingOf: [Int] = [], origins: [Int] = [], tensors: [SafeTensorInfo] = []
        var index: [String: Int] = [:]
        var owner: [String: String] = [:]
        for shard in shards {
            let base = backings.count
            backings += shard.backings
            for (k, info) in shard.tensors.enumerated() {
                if let other = owner[info.name] {
                    throw SafeTensorsError(
                        file: name, message: "tensor '\(info.name)' is in two shards: \(other) and \(shard.name)")
                }
                owner[info.name] = shard.name
                index[info.name] = tensors.count
                tensors.append(info)
                backingOf.append(base + shard.backingOf[k])
                origins.append(shard.origins[k])
            }
        }
        self.name = name
        self.backings = backings
        self.backingOf = backingOf
        self.origins = origins
        self.tensors = tensors
        self.metadata = shards.first?.metadata ?? [:]
        self.index = index
    }

    /// The entry for `name`, or nil.
    public func info(_ name: String) -> SafeTensorInfo? {
        index[name].map { tensors[$0] }
    }

    /// The tensor's values as Float (F32, F16, BF16 and F64 are accepted).
    public func floats(_ name: String) throws -> [Float] {
        let info = try require(name)
        let count = info.elementCount
        var failure: Error?
        let result = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            do {
                try copyFloats(info, into: buffer)
                initialized = count
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return result
    }

    /// Converts the tensor's values to Float into `buffer`, whose count must equal the element count.
    public func copyFloats(_ name: String, into buffer: UnsafeMutableBufferPointer<Float>) throws {
        try copyFloats(try require(name), into: buffer)
    }

    /// An int8 matrix as `bert quantize` writes it: I8 [rows, ...] and, in "<name>_scale", F32 [rows]
    /// (value = int8 × the row's scale); the scales must be finite and not negative.
    public func int8Matrix(_ name: String) throws -> (q: [Int8], scales: [Float]) {
        let info = try require(name)
        let scaleName = info.name + "_scale"
        guard info.dtype == .I8, let scaleInfo = self.info(scaleName), scaleInfo.dtype == .F32,
            let rows = info.shape.first, scaleInfo.shape == [rows]
        else {
            throw SafeTensorsError(
                file: self.name,
                message:
                    "tensor '\(info.name)' is int8 with scales '\(scaleName)' that are not F32 of shape "
                    + "[\(info.shape.first ?? 0)] (one per row)")
        }
        let scales = try floats(scaleName)
        guard scales.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw SafeTensorsError(
                file: self.name, message: "tensor '\(scaleName)' holds a negative or non-finite scale")
        }
        let q = withTensorBytes(info) { src in Array(src.bindMemory(to: Int8.self)) }
        return (q, scales)
    }

    /// A BF16 tensor's bit patterns (little-endian in the file); NaN or infinity is an error.
    public func bf16Bits(_ name: String) throws -> [UInt16] {
        let info = try require(name)
        guard info.dtype == .BF16 else {
            throw SafeTensorsError(file: self.name, message: "tensor '\(name)' is \(info.dtype.rawValue), not BF16")
        }
        let bits = withTensorBytes(info) { src in
            (0..<info.elementCount).map {
                UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 &* $0, as: UInt16.self))
            }
        }
        guard bits.allSatisfy({ $0 & 0x7F80 != 0x7F80 }) else {
            throw SafeTensorsError(file: self.name, message: "tensor '\(name)' holds NaN or an infinity")
        }
        return bits
    }

    private func copyDequantized(_ info: SafeTensorInfo, into buffer: UnsafeMutableBufferPointer<Float>) throws {
        let (q, scales) = try int8Matrix(info.name)
        guard buffer.count == q.count else {
            throw SafeTensorsError(
                file: name,
                message:
                    "tensor '\(info.name)' has \(q.count) elements but the destination buffer holds \(buffer.count)")
        }
        guard !q.isEmpty, let dst = buffer.baseAddress else { return }
        let rows = scales.count, cols = q.count / rows
        for r in 0..<rows {
            let s = scales[r]
            for c in 0..<cols { dst[r * cols + c] = Float(q[r * cols + c]) * s }
        }
    }

    /// The tensor's values widened to Int64 (I64, I32, I16, I8 and U8 are accepted).
    public func int64s(_ name: String) throws -> [Int64] {
        let info = try require(name)
        let count = info.elementCount
        switch info.dtype {
        case .I64, .I32, .I16, .I8, .U8: break
        default:
            throw SafeTensorsError(
                file: self.name,
                message:
                    "tensor '\(info.name)' has dtype \(info.dtype.rawValue), which cannot be read as integers "
                    + "(expected I64, I32, I16, I8 or U8)"
            )
        }
        return [Int64](unsafeUninitializedCapacity: count) { out, initialized in
            withTensorBytes(info) { src in
                guard let dst = out.baseAddress else { return }
                switch info.dtype {
                case .I64:
                    for i in 0..<count {
                        dst[i] = Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 &* i, as: Int64.self))
                    }
                case .I32:
                    for i in 0..<count {
                        dst[i] = Int64(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 &* i, as: Int32.self)))
                    }
                case .I16:
                    for i in 0..<count {
                        dst[i] = Int64(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 &* i, as: Int16.self)))
                    }
                case .I8:
                    for i in 0..<count { dst[i] = Int64(Int8(bitPattern: src[i])) }
                case .U8:
                    for i in 0..<count { dst[i] = Int64(src[i]) }
                default:
                    break
                }
            }
            initialized = count
        }
    }

    // MARK: Private reading helpers

    private func require(_ name: String) throws -> SafeTensorInfo {
        guard let info = info(name) else {
            throw SafeTensorsError(file: self.name, message: "no tensor named '\(name)'")
        }
        return info
    }

    /// Calls `body` with the tensor's bytes (possibly unaligned).
    private func withTensorBytes<R>(_ info: SafeTensorInfo, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let k = index[info.name]!
        return backings[backingOf[k]].withUnsafeBytes { all in
            let start = origins[k] + info.byteRange.lowerBound
            let end = origins[k] + info.byteRange.upperBound
            return body(UnsafeRawBufferPointer(rebasing: all[start..<end]))
        }
    }

    /// The tensor's bytes as stored (little-endian, its dtype), for copying into another file.
    public func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try require(name)
        return try withoutActuallyEscaping(body) { body in
            var result: Result<R, Error>!
            withTensorBytes(info) { bytes in result = Result { try body(bytes) } }
            return try result.get()
        }
    }

    private func copyFloats(_ info: SafeTensorInfo, into buffer: UnsafeMutableBufferPointer<Float>) throws {
        switch info.dtype {
        case .F32, .F16, .BF16, .F64: break
        case .I8 where self.info(info.name + "_scale") != nil:
            return try copyDequantized(info, into: buffer)
        default:
            throw SafeTensorsError(
                file: name,
                message:
                    "tensor '\(info.name)' has dtype \(info.dtype.rawValue), which cannot be read as floats "
                    + "(expected F32, F16, BF16 or F64)"
            )
        }
        let count = info.elementCount
        guard buffer.count == count else {
            throw SafeTensorsError(
                file: name,
                message: "tensor '\(info.name)' has \(count) elements but the destination buffer holds \(buffer.count)")
        }
        guard count > 0, let dst = buffer.baseAddress else { return }
        withTensorBytes(info) { src in
            guard let base = src.baseAddress else { return }
            switch info.dtype {
            case .F32:
                #if _endian(little)
                    memcpy(UnsafeMutableRawPointer(dst), base, count &* 4)
                #else
                    for i in 0..<count {
                        dst[i] = Float(
                            bitPattern: UInt32(
                                littleEndian: base.loadUnaligned(fromByteOffset: 4 &* i, as: UInt32.self)))
                    }
                #endif
            case .F16:
                for i in 0..<count {
                    let h = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self))
                    dst[i] = Float(bitPattern: safeTensorsHalfToFloatBits(h))
                }
            case .BF16:
                for i in 0..<count {
                    let h = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self))
                    dst[i] = Float(bitPattern: UInt32(h) &<< 16)
                }
            case .F64:
                for i in 0..<count {
                    let bits = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 &* i, as: UInt64.self))
                    dst[i] = Float(Double(bitPattern: bits))
                }
            default:
                break
            }
        }
    }

    // MARK: Header parsing helpers

    private static func isValidUTF8(_ bytes: Data) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// A non-negative JSON integer, or nil (booleans, fractions, negatives and huge values are rejected).
    private static func jsonNonNegativeInt(_ value: Any) -> Int? {
        if let n = value as? NSNumber {
            // JSON booleans also bridge to NSNumber; they carry the "c" (char) type code.
            if String(cString: n.objCType) == "c" { return nil }
            guard let i = Int(exactly: n), i >= 0 else { return nil }
            return i
        }
        if let i = value as? Int { return i >= 0 ? i : nil }
        return nil
    }

    private static func describeJSON(_ value: Any) -> String {
        if value is NSNull { return "null" }
        if let s = value as? String { return "\"\(s)\"" }
        if let n = value as? NSNumber {
            return String(cString: n.objCType) == "c" ? (n.boolValue ? "true" : "false") : "\(n)"
        }
        if value is [Any] { return "an array" }
        if value is [String: Any] { return "an object" }
        return "\(value)"
    }

    private static func parseEntry(
        _ name: String, _ value: Any, bufferLength: Int, fail: (String) -> SafeTensorsError
    ) throws -> SafeTensorInfo {
        guard let entry = value as? [String: Any] else {
            throw fail("entry for tensor '\(name)' is not an object")
        }
        // dtype
        guard let dtypeValue = entry["dtype"] else {
            throw fail("tensor '\(name)' is missing \"dtype\"")
        }
        guard let dtypeString = dtypeValue as? String else {
            throw fail("tensor '\(name)': \"dtype\" is not a string (got \(describeJSON(dtypeValue)))")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeString) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail("tensor '\(name)' has unknown or unsupported dtype '\(dtypeString)' (supported: \(known))")
        }
        // shape
        guard let shapeValue = entry["shape"] else {
            throw fail("tensor '\(name)' is missing \"shape\"")
        }
        guard let shapeArray = shapeValue as? [Any] else {
            throw fail("tensor '\(name)': \"shape\" is not an array (got \(describeJSON(shapeValue)))")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeArray.count)
        var elementCount = 1
        var overflow = false
        for dim in shapeArray {
            guard let d = jsonNonNegativeInt(dim) else {
                throw fail("tensor '\(name)': shape dimension \(describeJSON(dim)) is not a non-negative integer")
            }
            shape.append(d)
            if !overflow {
                let (p, o) = elementCount.multipliedReportingOverflow(by: d)
                if o { overflow = true } else { elementCount = p }
            }
        }
        // A zero dimension makes the product 0 regardless of an earlier overflow.
        if shape.contains(0) { overflow = false; elementCount = 0 }
        if overflow {
            throw fail("tensor '\(name)': element count of shape \(shape) overflows")
        }
        let (byteCount, byteOverflow) = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
        if byteOverflow {
            throw fail("tensor '\(name)': byte size of shape \(shape) with dtype \(dtype.rawValue) overflows")
        }
        // data_offsets
        guard let offsetsValue = entry["data_offsets"] else {
            throw fail("tensor '\(name)' is missing \"data_offsets\"")
        }
        guard let offsetsArray = offsetsValue as? [Any], offsetsArray.count == 2 else {
            throw fail(
                "tensor '\(name)': \"data_offsets\" is not an array of two integers (got \(describeJSON(offsetsValue)))"
            )
        }
        guard let begin = jsonNonNegativeInt(offsetsArray[0]), let end = jsonNonNegativeInt(offsetsArray[1]) else {
            throw fail(
                "tensor '\(name)': \"data_offsets\" [\(describeJSON(offsetsArray[0])), "
                    + "\(describeJSON(offsetsArray[1]))] are not non-negative integers"
            )
        }
        guard begin <= end else {
            throw fail("tensor '\(name)': data_offsets begin \(begin) > end \(end)")
        }
        guard end <= bufferLength else {
            throw fail(
                "tensor '\(name)': data_offsets [\(begin), \(end)] out of range: the data buffer is \(bufferLength) "
                    + "bytes (the file is truncated, or its header is wrong)"
            )
        }
        guard end - begin == byteCount else {
            throw fail(
                "tensor '\(name)': data_offsets [\(begin), \(end)] span \(end - begin) bytes but shape \(shape) with "
                    + "dtype \(dtype.rawValue) needs \(byteCount) bytes (\(elementCount) elements x \(dtype.byteSize))"
            )
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }
}

/// IEEE 754 binary16 bits to binary32 bits, exact for every input (subnormals, infinities,
/// NaN payloads). Branch-free so conversion loops can vectorize.
@inline(__always)
private func safeTensorsHalfToFloatBits(_ h: UInt16) -> UInt32 {
    let bits = UInt32(h)
    let sign = (bits & 0x8000) &<< 16
    let magnitude = bits & 0x7FFF
    let exponent = magnitude & 0x7C00
    // Normal numbers: rebias the exponent from 15 to 127.
    let normal = (magnitude &<< 13) &+ ((127 - 15) &<< 23)
    // Infinity / NaN: all-ones exponent, mantissa (payload) kept.
    let special = (magnitude &<< 13) | 0x7F80_0000
    // Subnormals (and zero): mantissa * 2^-24, exact in Float.
    let subnormal = (Float(Int32(bitPattern: magnitude)) * 0x1p-24).bitPattern
    let result = exponent == 0x7C00 ? special : (exponent == 0 ? subnormal : normal)
    return result | sign
}

// MARK: - Writer

/// `write(2)`, named apart from `SafeTensorsWriter.write(to:metadata:)`.
@inline(__always)
private func safeTensorsPOSIXWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
        return Glibc.write(fd, p, n)
    #elseif canImport(Musl)
        return Musl.write(fd, p, n)
    #else
        return Darwin.write(fd, p, n)
    #endif
}

/// Builds a safetensors file. Tensors are laid out sorted by name (UTF-8 byte order).
public struct SafeTensorsWriter {
    private struct Entry {
        let name: String
        let dtype: SafeTensorsDType
        let shape: [Int]
        let bytes: Data
    }

    private var entries: [Entry] = []

    /// A file with no tensors yet.
    public init() {}

    /// Adds an F32 tensor (the values are copied). Traps if the shape's product differs from
    /// `floats.count`, a dimension is negative, or the name is "__metadata__". Adding a name
    /// again replaces the earlier tensor.
    public mutating func add(_ name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) {
        Self.checkShape(name, shape, floats.count)
        var bytes = Data(count: floats.count * 4)
        if floats.count > 0 {
            bytes.withUnsafeMutableBytes { dst in
                #if _endian(little)
                    dst.copyMemory(from: UnsafeRawBufferPointer(floats))
                #else
                    for (i, f) in floats.enumerated() {
                        dst.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                    }
                #endif
            }
        }
        insert(Entry(name: name, dtype: .F32, shape: shape, bytes: bytes))
    }

    /// Adds an I64 tensor. Same rules as the Float variant.
    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) {
        Self.checkShape(name, shape, int64s.count)
        var bytes = Data(count: int64s.count * 8)
        bytes.withUnsafeMutableBytes { dst in
            for (i, v) in int64s.enumerated() {
                dst.storeBytes(of: v.littleEndian, toByteOffset: 8 * i, as: Int64.self)
            }
        }
        insert(Entry(name: name, dtype: .I64, shape: shape, bytes: bytes))
    }

    /// Adds a tensor of any dtype from its little-endian bytes (copied), e.g. from another file.
    /// Traps if the byte count is not the shape's product times the dtype's size.
    public mutating func add(_ name: String, dtype: SafeTensorsDType, shape: [Int], bytes: UnsafeRawBufferPointer) {
        Self.checkShape(name, shape, bytes.count / dtype.byteSize)
        precondition(
            bytes.count % dtype.byteSize == 0, "SafeTensorsWriter: \(name): bytes not a whole number of elements")
        insert(Entry(name: name, dtype: dtype, shape: shape, bytes: Data(bytes)))
    }

    /// The complete file image.
    public func serialized(metadata: [String: String] = ["format": "pt"]) -> Data {
        let (header, ordered) = buildHeader(metadata: metadata)
        var out = Data()
        out.reserveCapacity(header.count + ordered.reduce(0) { $0 + $1.bytes.count })
        out.append(header)
        for entry in ordered { out.append(entry.bytes) }
        return out
    }

    /// Writes the file atomically: a temporary "<name>.tmp-<pid>" in the same folder is written,
    /// fsynced and renamed over `url`.
    public func write(to url: URL, metadata: [String: String] = ["format": "pt"]) throws {
        let target = url.path
        func fail(_ what: String, _ code: Int32) -> SafeTensorsError {
            SafeTensorsError(file: target, message: "\(what): \(String(cString: strerror(code)))")
        }
        let (header, ordered) = buildHeader(metadata: metadata)
        let temp = target + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw fail("cannot create temporary file \(temp)", errno) }
        var closed = false
        defer {
            if !closed { _ = close(fd) }
        }
        do {
            try Self.writeAll(fd, header, fail)
            for entry in ordered { try Self.writeAll(fd, entry.bytes, fail) }
            guard fsync(fd) == 0 else { throw fail("fsync failed", errno) }
            closed = true
            guard close(fd) == 0 else { throw fail("close failed", errno) }
            guard rename(temp, target) == 0 else { throw fail("cannot rename \(temp) to the target", errno) }
        } catch {
            _ = unlink(temp)
            throw error
        }
        // Best effort: persist the rename itself.
        let dir = url.deletingLastPathComponent().path
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 {
            _ = fsync(dfd)
            _ = close(dfd)
        }
    }

    // MARK: Private writing helpers

    private static func checkShape(_ name: String, _ shape: [Int], _ count: Int) {
        precondition(name != "__metadata__", "SafeTensorsWriter: the name \"__metadata__\" is reserved")
        precondition(
            shape.allSatisfy { $0 >= 0 }, "SafeTensorsWriter: tensor '\(name)' has a negative dimension in \(shape)")
        var product = 1
        for d in shape {
            let (p, o) = product.multipliedReportingOverflow(by: d)
            precondition(!o, "SafeTensorsWriter: tensor '\(name)' shape \(shape) overflows")
            product = p
        }
        precondition(
            product == count,
            "SafeTensorsWriter: tensor '\(name)' shape \(shape) has \(product) elements but \(count) values were given")
    }

    private mutating func insert(_ entry: Entry) {
        if let i = entries.firstIndex(where: { Array($0.name.utf8) == Array(entry.name.utf8) }) {
            entries[i] = entry
        } else {
            entries.append(entry)
        }
    }

    private static func utf8Less(_ a: String, _ b: String) -> Bool {
        Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
    }

    /// The 8-byte length prefix plus padded JSON header, and the entries in layout order.
    private func buildHeader(metadata: [String: String]) -> (Data, [Entry]) {
        let ordered = entries.sorted { Self.utf8Less($0.name, $1.name) }
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            var firstKey = true
            for key in metadata.keys.sorted(by: Self.utf8Less) {
                if !firstKey { json += "," }
                firstKey = false
                json += Self.jsonString(key) + ":" + Self.jsonString(metadata[key]!)
            }
            json += "}"
            first = false
        }
        var offset = 0
        for entry in ordered {
            if !first { json += "," }
            first = false
            let end = offset + entry.bytes.count
            json += Self.jsonString(entry.name)
            json += ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":["
            json += entry.shape.map(String.init).joined(separator: ",")
            json += "],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var headerBytes = Array(json.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var out = Data(capacity: 8 + headerBytes.count)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        return (out, ordered)
    }

    /// A JSON string literal with quotes, backslashes and control characters escaped.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16, uppercase: false)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
        return out
    }

    private static func writeAll(_ fd: Int32, _ data: Data, _ fail: (String, Int32) -> SafeTensorsError) throws {
        try data.withUnsafeBytes { raw in
            guard var p = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let n = safeTensorsPOSIXWrite(fd, p, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail("write failed", errno)
                }
                p += n
                left -= n
            }
        }
    }
}
