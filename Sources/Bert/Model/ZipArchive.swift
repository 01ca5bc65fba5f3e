import Foundation

/// The stored (uncompressed) members of a zip archive, read from its central directory: what
/// `torch.save` writes since PyTorch 1.6 (every member stored, zip64 records when large). Members
/// are byte ranges of the archive's data, read in place; a compressed member is reported, not
/// inflated (torch never compresses).
struct ZipArchive {
    struct Member {
        let name: String
        /// Where the member's bytes lie in the archive.
        let bytes: Range<Int>
        /// 0: stored; anything else is compressed.
        let method: UInt16
    }

    let members: [Member]
    private let index: [String: Int]

    func member(_ name: String) -> Member? { index[name].map { members[$0] } }

    /// Parses the central directory of `data`; `path` names the file in errors.
    init(data: Data, path: String) throws {
        func bad(_ why: String) -> BertError {
            .malformedFile(path: path, reason: "not a readable zip archive: \(why)")
        }
        let total = data.count
        var found: [Member] = []
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            // Bounds as `at <= total - n`: an offset read from the file may be near Int.max.
            func u16(_ at: Int) throws -> Int {
                guard at >= 0, at <= total - 2 else { throw bad("a record runs past the end of the file") }
                return Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            }
            func u32(_ at: Int) throws -> Int {
                guard at >= 0, at <= total - 4 else { throw bad("a record runs past the end of the file") }
                return Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            }
            func u64(_ at: Int) throws -> Int {
                guard at >= 0, at <= total - 8 else { throw bad("a record runs past the end of the file") }
                let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                guard v <= UInt64(Int.max) else { throw bad("a zip64 field is out of range") }
                return Int(v)
            }
            // The end-of-central-directory record: the last 22 bytes, or earlier by a comment of
            // at most 65,535 bytes.
            var end = -1
            var at = total - 22
            while at >= max(0, total - 22 - 65_535) {
                if try u32(at) == 0x0605_4B50 {
                    end = at
                    break
                }
                at -= 1
            }
            guard end >= 0 else { throw bad("no end-of-central-directory record (is it a zip file?)") }
            var count = try u16(end + 10)
            var directorySize = try u32(end + 12)
            var directoryStart = try u32(end + 16)
            // Zip64: the locator sits just before the record and points at the zip64 record.
            if end >= 20, try u32(end - 20) == 0x0706_4B50 {
                let record = try u64(end - 20 + 8)
                guard try u32(record) == 0x0606_4B50 else { throw bad("the zip64 locator points at no zip64 record") }
                count = try u64(record + 32)
                directorySize = try u64(record + 40)
                directoryStart = try u64(record + 48)
            }
            guard directoryStart <= total, directorySize <= total - directoryStart else {
                throw bad("the central directory lies outside the file")
            }
            // Each entry takes at least 46 bytes: a count past that is a corrupt record.
            guard count <= directorySize / 46 else {
                throw bad("the central directory is too small for \(count) entries")
            }
            var p = directoryStart
            for _ in 0..<count {
                guard try u32(p) == 0x0201_4B50 else { throw bad("a central directory entry has a wrong signature") }
                let method = UInt16(try u16(p + 10))
                var size = try u32(p + 20)
                let uncompressed = try u32(p + 24)
                let nameLength = try u16(p + 28), extraLength = try u16(p + 30), commentLength = try u16(p + 32)
                var localHeader = try u32(p + 42)
                guard p + 46 + nameLength + extraLength + commentLength <= directoryStart + directorySize else {
                    throw bad("a central directory entry runs past the directory")
                }
                let name = String(decoding: raw[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
                // The zip64 extra field holds, in this order, the fields that read 0xFFFFFFFF.
                var e = p + 46 + nameLength
                let extraEnd = e + extraLength
                while e + 4 <= extraEnd {
                    let tag = try u16(e), length = try u16(e + 2)
                    guard e + 4 + length <= extraEnd else { throw bad("an extra field of \(name) runs past its entry") }
                    if tag == 0x0001 {
                        var q = e + 4
                        if uncompressed == 0xFFFF_FFFF { q += 8 }
                        if size == 0xFFFF_FFFF, q + 8 <= e + 4 + length { size = try u64(q); q += 8 }
                        if localHeader == 0xFFFF_FFFF, q + 8 <= e + 4 + length { localHeader = try u64(q) }
                    }
                    e += 4 + length
                }
                // The data follows the local header, whose name and extra field may differ in length.
                guard localHeader <= total else {
                    throw bad("the local header of \(name) lies past the end of the file")
                }
                guard try u32(localHeader) == 0x0403_4B50 else { throw bad("the local header of \(name) is missing") }
                let start = localHeader + 30 + (try u16(localHeader + 26)) + (try u16(localHeader + 28))
                guard start <= total, size <= total - start else { throw bad("the data of \(name) runs past the file") }
                found.append(Member(name: name, bytes: start..<(start + size), method: method))
                p += 46 + nameLength + extraLength + commentLength
            }
        }
        members = found
        var index: [String: Int] = [:]
        for (k, m) in found.enumerated() where index[m.name] == nil { index[m.name] = k }
        self.index = index
    }
}
