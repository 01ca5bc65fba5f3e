import Foundation
import Testing
import Bert

/// Builds a safetensors image by hand: length prefix, header text (optionally padded with
/// spaces to `headerLength`), then the data bytes.
private func stImage(_ header: String, data: [UInt8] = [], padTo headerLength: Int? = nil) -> Data {
    var headerBytes = Array(header.utf8)
    if let headerLength {
        while headerBytes.count < headerLength { headerBytes.append(0x20) }
    }
    var out = Data()
    withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: headerBytes)
    out.append(contentsOf: data)
    return out
}

/// Parses `bytes` and returns the error message, or nil if parsing succeeded.
private func stError(_ bytes: Data, name: String = "test.safetensors") -> SafeTensorsError? {
    do {
        _ = try SafeTensorsFile(data: bytes, name: name)
        return nil
    } catch let error as SafeTensorsError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

private func stError(_ header: String, data: [UInt8] = []) -> SafeTensorsError? {
    stError(stImage(header, data: data))
}

private func leBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    var out: [UInt8] = []
    for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    return out
}

private func tempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("safetensors-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct SafeTensorsTests {
    // MARK: Round trip

    @Test func roundTripSeveralTensors() throws {
        let special: [Float] = [
            1.5, -0.0, 0.0, .infinity, -.infinity,
            Float(bitPattern: 0x7FC0_0001), Float(bitPattern: 0xFF80_0123),  // quiet and signalling NaNs
            .leastNonzeroMagnitude, .greatestFiniteMagnitude, -3.25,
        ]
        let matrix: [Float] = (0..<12).map { Float($0) * 0.5 - 2 }
        let ids: [Int64] = [0, -1, .max, .min, 42, 7]

        var writer = SafeTensorsWriter()
        matrix.withUnsafeBufferPointer { writer.add("layer.weight", shape: [3, 4], floats: $0) }
        special.withUnsafeBufferPointer { writer.add("b \"quoted\" \\ name\n", shape: [10], floats: $0) }
        writer.add("ids", shape: [2, 3], int64s: ids)
        [Float(7)].withUnsafeBufferPointer { writer.add("scalar", shape: [], floats: $0) }
        [Float]().withUnsafeBufferPointer { writer.add("empty", shape: [0, 5], floats: $0) }

        let bytes = writer.serialized(metadata: ["format": "pt", "note": "a\"b\\c"])
        // 8 + N is a multiple of 8.
        let n = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        #expect((8 + n) % 8 == 0)

        let file = try SafeTensorsFile(data: bytes, name: "roundtrip")
        #expect(file.metadata == ["format": "pt", "note": "a\"b\\c"])
        #expect(file.tensors.count == 5)
        // Sorted by offset, and the writer lays tensors out sorted by name.
        let offsets = file.tensors.map(\.byteRange.lowerBound)
        #expect(offsets == offsets.sorted())
        #expect(file.tensors.map(\.name) == ["b \"quoted\" \\ name\n", "empty", "ids", "layer.weight", "scalar"])

        let weight = try #require(file.info("layer.weight"))
        #expect(weight.dtype == .F32)
        #expect(weight.shape == [3, 4])
        #expect(weight.elementCount == 12)
        #expect(try file.floats("layer.weight") == matrix)

        let got = try file.floats("b \"quoted\" \\ name\n")
        #expect(got.map(\.bitPattern) == special.map(\.bitPattern))

        #expect(try file.int64s("ids") == ids)
        #expect(file.info("ids")?.dtype == .I64)

        let scalar = try #require(file.info("scalar"))
        #expect(scalar.shape == [])
        #expect(scalar.elementCount == 1)
        #expect(try file.floats("scalar") == [7])

        let empty = try #require(file.info("empty"))
        #expect(empty.elementCount == 0)
        #expect(empty.byteRange.isEmpty)
        #expect(try file.floats("empty") == [])

        #expect(file.info("missing") == nil)
        #expect(throws: SafeTensorsError.self) { try file.floats("missing") }
    }

    @Test func serializationIsDeterministic() {
        var a = SafeTensorsWriter()
        var b = SafeTensorsWriter()
        let x: [Float] = [1, 2]
        let y: [Float] = [3]
        x.withUnsafeBufferPointer { a.add("x", shape: [2], floats: $0) }
        y.withUnsafeBufferPointer { a.add("y", shape: [1], floats: $0) }
        y.withUnsafeBufferPointer { b.add("y", shape: [1], floats: $0) }
        x.withUnsafeBufferPointer { b.add("x", shape: [2], floats: $0) }
        let meta = ["format": "pt", "a": "1", "z": "2"]
        #expect(a.serialized(metadata: meta) == b.serialized(metadata: meta))
        // Compact JSON, metadata first, keys sorted, contiguous offsets, space padding.
        let data = a.serialized(metadata: ["format": "pt"])
        let n = Int(data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        let header = String(decoding: data[8..<(8 + n)], as: UTF8.self)
        let expected =
            #"{"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        #expect(header.trimmingCharacters(in: .whitespaces) == expected)
        #expect(header.hasPrefix(expected))
        #expect(data.count == 8 + n + 12)
    }

    @Test func copyFloatsChecksCount() throws {
        var writer = SafeTensorsWriter()
        let values: [Float] = [1, 2, 3, 4]
        values.withUnsafeBufferPointer { writer.add("w", shape: [2, 2], floats: $0) }
        writer.add("i", shape: [1], int64s: [5])
        let file = try SafeTensorsFile(data: writer.serialized(), name: "counts")

        var out = [Float](repeating: 0, count: 4)
        try out.withUnsafeMutableBufferPointer { try file.copyFloats("w", into: $0) }
        #expect(out == values)

        var small = [Float](repeating: 0, count: 3)
        let error = #expect(throws: SafeTensorsError.self) {
            try small.withUnsafeMutableBufferPointer { try file.copyFloats("w", into: $0) }
        }
        #expect(error?.message.contains("4") == true)
        #expect(error?.message.contains("3") == true)
        #expect(error?.message.contains("'w'") == true)

        // Wrong dtype in both directions names the tensor and the dtype.
        let e1 = #expect(throws: SafeTensorsError.self) { try file.floats("i") }
        #expect(e1?.message.contains("'i'") == true)
        #expect(e1?.message.contains("I64") == true)
        let e2 = #expect(throws: SafeTensorsError.self) { try file.int64s("w") }
        #expect(e2?.message.contains("'w'") == true)
        #expect(e2?.message.contains("F32") == true)
    }

    // MARK: Decoding of other dtypes

    @Test func decodesF16Exactly() throws {
        let halves: [UInt16] = [
            0x0001, 0x03FF, 0x0400, 0x7BFF, 0x8000, 0x0000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x3C00, 0xC000, 0x3555,
        ]
        let file = try SafeTensorsFile(
            data: stImage(#"{"h":{"dtype":"F16","shape":[13],"data_offsets":[0,26]}}"#, data: leBytes(halves)),
            name: "f16")
        let v = try file.floats("h")
        #expect(v[0] == 5.960464477539063e-08)
        #expect(v[0] == Float(bitPattern: 0x3380_0000))  // 2^-24
        #expect(v[1] == 6.097555160522461e-05)  // largest subnormal: 1023 * 2^-24
        #expect(v[2] == 6.103515625e-05)  // smallest normal: 2^-14
        #expect(v[3] == 65504)
        #expect(v[4].bitPattern == 0x8000_0000)  // -0
        #expect(v[5].bitPattern == 0)
        #expect(v[6] == .infinity)
        #expect(v[7] == -.infinity)
        #expect(v[8].isNaN)
        #expect(v[8].bitPattern == 0x7FC0_0000)
        #expect(v[9].isNaN)
        #expect(v[9].bitPattern == 0x7F80_2000)  // payload preserved
        #expect(v[10] == 1)
        #expect(v[11] == -2)
        #expect(v[12] == 0.333251953125)
    }

    @Test func decodesAllF16Values() throws {
        // Every binary16 pattern against an independent arithmetic decoding.
        let all: [UInt16] = (0...0xFFFF).map { UInt16($0) }
        let file = try SafeTensorsFile(
            data: stImage(#"{"h":{"dtype":"F16","shape":[65536],"data_offsets":[0,131072]}}"#, data: leBytes(all)),
            name: "f16-all")
        let v = try file.floats("h")
        for h in all {
            let sign: Float = h & 0x8000 != 0 ? -1 : 1
            let e = Int((h >> 10) & 0x1F)
            let m = Float(h & 0x3FF)
            let got = v[Int(h)]
            if e == 31 {
                if m == 0 { #expect(got == sign * .infinity) } else { #expect(got.isNaN) }
            } else {
                let expected =
                    e == 0
                    ? sign * m * 0x1p-24 : sign * (1 + m / 1024) * Float(sign: .plus, exponent: e - 15, significand: 1)
                if got.bitPattern != expected.bitPattern {
                    Issue.record("F16 0x\(String(h, radix: 16)) decoded to \(got), expected \(expected)")
                }
            }
        }
    }

    @Test func decodesBF16AndF64() throws {
        let bf: [UInt16] = [0x3F80, 0xBF80, 0x8000, 0x7F80, 0x7FC0, 0x4049, 0x0001]
        let doubles: [Double] = [1.0, -2.5, 1e300, 0.1]
        var data = leBytes(bf)  // 14 bytes
        data += leBytes(doubles.map(\.bitPattern))  // 32 bytes
        let header =
            #"{"b":{"dtype":"BF16","shape":[7],"data_offsets":[0,14]},"d":{"dtype":"F64","shape":[2,2],"#
            + #""data_offsets":[14,46]}}"#
        let file = try SafeTensorsFile(data: stImage(header, data: data), name: "bf16")
        let b = try file.floats("b")
        #expect(b[0] == 1.0)
        #expect(b[1] == -1.0)
        #expect(b[2].bitPattern == 0x8000_0000)
        #expect(b[3] == .infinity)
        #expect(b[4].isNaN)
        #expect(b[5] == 3.140625)
        #expect(b[6].bitPattern == 0x0001_0000)
        let d = try file.floats("d")
        #expect(d == [1.0, -2.5, .infinity, Float(0.1)])
    }

    @Test func decodesIntegerDtypes() throws {
        var data: [UInt8] = []
        data += leBytes([Int32(-5), Int32.max])  // 0..<8
        data += leBytes([Int16(-300), Int16(300)])  // 8..<12
        data += [0xFF, 0x7F]  // I8 12..<14
        data += [0xFF, 0x00]  // U8 14..<16
        let header = """
            {"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},\
            "b":{"dtype":"I16","shape":[2],"data_offsets":[8,12]},\
            "c":{"dtype":"I8","shape":[2],"data_offsets":[12,14]},\
            "d":{"dtype":"U8","shape":[2],"data_offsets":[14,16]}}
            """
        let file = try SafeTensorsFile(data: stImage(header, data: data), name: "ints")
        #expect(try file.int64s("a") == [-5, Int64(Int32.max)])
        #expect(try file.int64s("b") == [-300, 300])
        #expect(try file.int64s("c") == [-1, 127])
        #expect(try file.int64s("d") == [255, 0])
    }

    @Test func readsUnalignedDataStart() throws {
        // Header length 61: the data buffer starts at byte 69, so every value is unaligned.
        let floats: [Float] = [1.25, -7, .infinity]
        let halves: [UInt16] = [0x3C00, 0x0001]
        let ints: [Int64] = [-9, 1 << 40]
        var data = leBytes(floats.map(\.bitPattern))  // 0..<12
        data += leBytes(halves)  // 12..<16
        data += leBytes(ints)  // 16..<32
        let header = """
            {"f":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},\
            "h":{"dtype":"F16","shape":[2],"data_offsets":[12,16]},\
            "i":{"dtype":"I64","shape":[2],"data_offsets":[16,32]}}
            """
        var headerLength = Array(header.utf8).count
        while headerLength % 8 != 5 { headerLength += 1 }  // data starts at 8 + N, 5 mod 8
        let file = try SafeTensorsFile(data: stImage(header, data: data, padTo: headerLength), name: "unaligned")
        #expect(try file.floats("f") == floats)
        #expect(try file.floats("h") == [1, 5.960464477539063e-08])
        #expect(try file.int64s("i") == ints)

        // Also through a Data slice whose start index is not zero.
        let padded = Data([1, 2, 3]) + stImage(header, data: data, padTo: headerLength)
        let slice = padded[3...]
        let sliced = try SafeTensorsFile(data: slice, name: "slice")
        #expect(try sliced.floats("f") == floats)
    }

    @Test func largeCopyMatches() throws {
        let count = 1 << 20
        let values = (0..<count).map { Float($0) * 0.25 }
        var writer = SafeTensorsWriter()
        values.withUnsafeBufferPointer { writer.add("big", shape: [1024, 1024], floats: $0) }
        let file = try SafeTensorsFile(data: writer.serialized(), name: "big")
        let out = try file.floats("big")
        #expect(out == values)
    }

    // MARK: Errors

    @Test func truncatedFile() {
        let e = stError(Data([1, 2, 3]))
        #expect(e?.message.contains("truncated") == true)
        #expect(e?.file == "test.safetensors")
        #expect(e?.description.hasPrefix("test.safetensors: ") == true)
        #expect(stError(Data())?.message.contains("truncated") == true)
    }

    @Test func headerLengthPastEnd() {
        var bytes = Data()
        withUnsafeBytes(of: UInt64(100).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array("{}".utf8))
        let e = stError(bytes)
        #expect(e?.message.contains("header length 100") == true)
        var huge = Data()
        withUnsafeBytes(of: UInt64.max.littleEndian) { huge.append(contentsOf: $0) }
        huge.append(contentsOf: Array("{}".utf8))
        #expect(stError(huge)?.message.contains("past the end") == true)
    }

    @Test func badHeaderText() {
        var invalid = Data()
        withUnsafeBytes(of: UInt64(4).littleEndian) { invalid.append(contentsOf: $0) }
        invalid.append(contentsOf: [0x7B, 0xFF, 0xFE, 0x7D])
        #expect(stError(invalid)?.message.contains("UTF-8") == true)
        #expect(stError("{\"a\": ")?.message.contains("not valid JSON") == true)
        #expect(stError("not json")?.message.contains("not valid JSON") == true)
        #expect(stError("[1,2]")?.message.contains("not an object") == true)
        #expect(stError(#"{"__metadata__":[1]}"#)?.message.contains("__metadata__") == true)
        #expect(stError(#"{"__metadata__":{"k":1}}"#)?.message.contains("\"k\"") == true)
        #expect(stError(#"{"t":5}"#)?.message.contains("'t'") == true)
    }

    @Test func emptyHeaderIsValid() throws {
        let file = try SafeTensorsFile(data: stImage("{}", padTo: 8), name: "empty")
        #expect(file.tensors.isEmpty)
        #expect(file.metadata.isEmpty)
        let withMeta = try SafeTensorsFile(data: stImage(#"{"__metadata__":{"format":"pt"}}"#), name: "meta")
        #expect(withMeta.metadata == ["format": "pt"])
    }

    @Test func missingOrMistypedFields() {
        let cases: [(String, [String])] = [
            (#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, ["'w'", "dtype"]),
            (#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, ["'w'", "shape"]),
            (#"{"w":{"dtype":"F32","shape":[1]}}"#, ["'w'", "data_offsets"]),
            (#"{"w":{"dtype":3,"shape":[1],"data_offsets":[0,4]}}"#, ["'w'", "dtype"]),
            (#"{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, ["'w'", "shape"]),
            (#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, ["'w'", "1.5"]),
            (#"{"w":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, ["'w'", "true"]),
            (#"{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, ["'w'", "non-negative integer"]),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, ["'w'", "data_offsets"]),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":{"a":0}}}"#, ["'w'", "data_offsets"]),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}"#, ["'w'", "data_offsets"]),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, ["'w'", "data_offsets"]),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551620]}}"#, ["'w'", "data_offsets"]),
        ]
        for (header, words) in cases {
            let e = stError(header, data: [0, 0, 0, 0])
            #expect(e != nil, "accepted: \(header)")
            for word in words {
                #expect(e?.message.contains(word) == true, "\(header): \(e?.message ?? "no error") lacks \(word)")
            }
        }
    }

    @Test func unknownDtype() {
        let e = stError(#"{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        #expect(e?.message.contains("F8_E4M3") == true)
        #expect(e?.message.contains("'w'") == true)
        #expect(e?.message.contains("dtype") == true)
    }

    @Test func negativeDimension() {
        let e = stError(#"{"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        #expect(e?.message.contains("'w'") == true)
        #expect(e?.message.contains("-1") == true)
    }

    @Test func beginAfterEnd() {
        let e = stError(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0])
        #expect(e?.message.contains("'w'") == true)
        #expect(e?.message.contains("begin 4 > end 0") == true)
    }

    @Test func endPastBuffer() {
        let e = stError(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0])
        #expect(e?.message.contains("'w'") == true)
        #expect(e?.message.contains("out of range") == true)
    }

    @Test func byteLengthMismatch() {
        let e = stError(
            #"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, data: [UInt8](repeating: 0, count: 20))
        let message = e?.message ?? ""
        #expect(message.contains("'w'"))
        #expect(message.contains("[2, 3]"))
        #expect(message.contains("20 bytes"))
        #expect(message.contains("24 bytes"))
    }

    @Test func overlappingTensors() {
        let header =
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"#
            + #""data_offsets":[4,12]}}"#
        let e = stError(header, data: [UInt8](repeating: 0, count: 12))
        let message = e?.message ?? ""
        #expect(message.contains("'a'"))
        #expect(message.contains("'b'"))
        #expect(message.contains("overlap"))

        let same =
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"#
            + #""data_offsets":[0,4]}}"#
        #expect(stError(same, data: [0, 0, 0, 0])?.message.contains("overlap") == true)
    }

    @Test func gapsAndUnusedBytes() {
        let gap =
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"#
            + #""data_offsets":[8,12]}}"#
        let e1 = stError(gap, data: [UInt8](repeating: 0, count: 12))
        #expect(e1?.message.contains("gap") == true)
        #expect(e1?.message.contains("'a'") == true)
        #expect(e1?.message.contains("'b'") == true)
        #expect(e1?.message.contains("reference") == true)

        let leading = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(stError(leading, data: [UInt8](repeating: 0, count: 8))?.message.contains("gap") == true)

        let trailing = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let e2 = stError(trailing, data: [UInt8](repeating: 0, count: 6))
        #expect(e2?.message.contains("unused bytes at the end") == true)
        #expect(e2?.message.contains("reference") == true)

        #expect(stError("{}", data: [1])?.message.contains("unused") == true)
    }

    @Test func elementCountOverflow() {
        let e = stError(
            #"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        #expect(e?.message.contains("'w'") == true)
        #expect(e?.message.contains("overflow") == true)
        let bytes = stError(
            #"{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        #expect(bytes?.message.contains("overflow") == true)
        // A zero dimension makes the tensor empty even after a huge product.
        #expect(stError(#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}"#) == nil)
    }

    @Test func zeroSizeTensorsAreAllowed() throws {
        let header = """
            {"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},\
            "b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},\
            "c":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]}}
            """
        let file = try SafeTensorsFile(data: stImage(header, data: [0, 0, 0x80, 0x3F]), name: "zero")
        #expect(file.tensors.map(\.name) == ["a", "b", "c"])
        #expect(try file.floats("b") == [1])
        #expect(try file.int64s("c") == [])
    }

    @Test func mutatedInputsNeverCrash() throws {
        var writer = SafeTensorsWriter()
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        values.withUnsafeBufferPointer { writer.add("w", shape: [2, 3], floats: $0) }
        writer.add("ids", shape: [2], int64s: [1, 2])
        let valid = writer.serialized()
        func exercise(_ bytes: Data) {
            guard let file = try? SafeTensorsFile(data: bytes, name: "fuzz") else { return }
            for t in file.tensors {
                _ = try? file.floats(t.name)
                _ = try? file.int64s(t.name)
            }
        }
        // Every truncation.
        for length in 0..<valid.count { exercise(valid.prefix(length)) }
        // Deterministic random byte mutations.
        var state: UInt64 = 0x1234_5678
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<(1 + Int(next() % 3)) {
                let i = Int(next() % UInt64(bytes.count))
                bytes[i] = UInt8(truncatingIfNeeded: next())
            }
            exercise(bytes)
        }
    }

    // MARK: Files

    @Test func atomicWriteReplacesAndLeavesNoTemp() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        try Data("old contents that are not safetensors".utf8).write(to: url)

        var writer = SafeTensorsWriter()
        let values: [Float] = [1, -2, 3.5]
        values.withUnsafeBufferPointer { writer.add("w", shape: [3], floats: $0) }
        writer.add("ids", shape: [2], int64s: [10, 20])
        try writer.write(to: url)

        let listing = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(listing == ["model.safetensors"])
        #expect(try Data(contentsOf: url) == writer.serialized())

        let file = try SafeTensorsFile(contentsOf: url)
        #expect(file.metadata == ["format": "pt"])
        #expect(try file.floats("w") == values)
        #expect(try file.int64s("ids") == [10, 20])

        // Writing again over an existing safetensors file.
        var second = SafeTensorsWriter()
        second.add("only", shape: [1], int64s: [99])
        try second.write(to: url, metadata: [:])
        let reread = try SafeTensorsFile(contentsOf: url)
        #expect(reread.tensors.map(\.name) == ["only"])
        #expect(reread.metadata.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])
    }

    @Test func writeToMissingFolderThrows() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("no/such/folder/model.safetensors")
        var writer = SafeTensorsWriter()
        writer.add("x", shape: [1], int64s: [1])
        let e = #expect(throws: SafeTensorsError.self) { try writer.write(to: url) }
        #expect(e?.file == url.path)
    }

    @Test func readingMissingFileThrows() throws {
        let url = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)/x.safetensors")
        let e = #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(contentsOf: url) }
        #expect(e?.file == url.path)
    }

    @Test func corruptFileOnDiskThrows() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2]).write(to: url)
        let e = #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(contentsOf: url) }
        #expect(e?.message.contains("truncated") == true)
        #expect(e?.description.hasPrefix(url.path) == true)
    }
}
