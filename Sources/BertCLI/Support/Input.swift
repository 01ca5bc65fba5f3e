import Foundation

/// Lines of UTF-8 text from files or stdin, a block at a time: each block is one buffer of whole
/// lines and their byte ranges (without the newline), so a command can work on bytes with no
/// String per line. Invalid UTF-8 is replaced by U+FFFD as a decoder would, with one warning.
struct LineBlocks {
    let paths: [String]
    /// Bytes read from the input at a time; a block holds at least this much unless the input ends.
    var blockSize = 1 << 20
    /// The longest line taken: an input with no newline in gigabytes (a disk image, /dev/zero)
    /// is an error, not a buffer grown until the allocation fails.
    static let maxLineBytes = 64 << 20
    private(set) var warnedInvalid = false

    init(paths: [String]) { self.paths = paths }

    mutating func forEach(_ body: (UnsafeBufferPointer<UInt8>, [Range<Int>]) throws -> Void) throws {
        // One buffer for the whole input: each read appends after the previous block's unfinished
        // last line, whole lines go to `body`, the rest moves to the front.
        var buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 2 * blockSize)
        var capacity = 2 * blockSize
        defer { buffer.deallocate() }
        for (name, handle) in try openInputs(paths) {
            let fd = handle.fileDescriptor
            var filled = 0
            var ended = false
            var first = true
            while !ended {
                if filled > Self.maxLineBytes {
                    throw CLIError(
                        "\(name): a line is longer than \(Self.maxLineBytes >> 20) MB (no newline in it); split the "
                            + "input into lines")
                }
                if capacity - filled < blockSize {
                    // A line longer than a block: grow.
                    let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: 2 * capacity)
                    bigger.update(from: buffer, count: filled)
                    buffer.deallocate()
                    buffer = bigger
                    capacity *= 2
                }
                let n = read(fd, buffer + filled, blockSize)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CLIError("\(name): cannot read: \(String(cString: strerror(errno)))")
                }
                ended = n == 0
                let searchFrom = filled
                filled += n
                // Whole lines only, unless the input ended (its last line may lack a newline).
                var cut = filled
                if !ended {
                    cut = 0
                    var k = filled
                    while k > searchFrom { k -= 1; if buffer[k] == 0x0A { cut = k + 1; break } }
                }
                if cut == 0 { continue }
                // A byte-order mark at the start of a file is not text (offsets would shift by one).
                var skip = 0
                if first && cut >= 3 && buffer[0] == 0xEF && buffer[1] == 0xBB && buffer[2] == 0xBF { skip = 3 }
                first = false
                try emit(UnsafeBufferPointer(start: buffer + skip, count: cut - skip), source: name, body)
                (buffer).update(from: buffer + cut, count: filled - cut)
                filled -= cut
            }
        }
    }

    private mutating func emit(
        _ bytes: UnsafeBufferPointer<UInt8>, source: String,
        _ body: (UnsafeBufferPointer<UInt8>, [Range<Int>]) throws -> Void
    ) throws {
        if isValidUTF8(bytes) {
            try body(bytes, lineRanges(bytes))
            return
        }
        if !warnedInvalid {
            warn("warning: \(source): invalid UTF-8 replaced with U+FFFD (reported once)")
            warnedInvalid = true
        }
        var text = String(decoding: bytes, as: UTF8.self)
        try text.withUTF8 { try body($0, lineRanges($0)) }
    }
}

/// The byte ranges of the lines of `buf`, line ends excluded: LF or CRLF (a last line without
/// one included).
func lineRanges(_ buf: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
    var lines: [Range<Int>] = []
    guard let base = buf.baseAddress else { return lines }
    lines.reserveCapacity(buf.count / 32)
    func add(_ start: Int, _ end: Int) {
        lines.append(start..<(end > start && buf[end - 1] == 0x0D ? end - 1 : end))
    }
    var start = 0
    while start < buf.count {
        guard let nl = memchr(base + start, 0x0A, buf.count - start) else {
            add(start, buf.count)
            break
        }
        let end = UnsafePointer(nl.assumingMemoryBound(to: UInt8.self)) - base
        add(start, end)
        start = end + 1
    }
    return lines
}

/// Whether `buf` is well-formed UTF-8 (as `String(validating:)` decides: no overlong forms, no
/// surrogates, nothing past U+10FFFF), without copying it: 8 ASCII bytes at a time.
func isValidUTF8(_ buf: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let p = buf.baseAddress else { return true }
    let n = buf.count
    var i = 0
    while i < n {
        if i + 8 <= n, UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
            i += 8
            continue
        }
        let b0 = p[i]
        if b0 < 0x80 { i += 1; continue }
        @inline(__always) func cont(_ k: Int) -> Bool { i + k < n && p[i + k] & 0xC0 == 0x80 }
        switch b0 {
        case 0xC2...0xDF:
            guard cont(1) else { return false }
            i += 2
        case 0xE0...0xEF:
            guard cont(1), cont(2) else { return false }
            let b1 = p[i + 1]
            if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
            if b0 == 0xED && b1 >= 0xA0 { return false }  // surrogates
            i += 3
        case 0xF0...0xF4:
            guard cont(1), cont(2), cont(3) else { return false }
            let b1 = p[i + 1]
            if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
            if b0 == 0xF4 && b1 >= 0x90 { return false }  // past U+10FFFF
            i += 4
        default:
            return false
        }
    }
    return true
}

/// The inputs to read: the files named, or stdin when none.
func openInputs(_ paths: [String]) throws -> [(String, FileHandle)] {
    if paths.isEmpty { return [("<stdin>", FileHandle.standardInput)] }
    return try paths.map { path in
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
        guard let h = FileHandle(forReadingAtPath: path) else { throw CLIError("\(path): cannot open for reading") }
        return (path, h)
    }
}

/// Reads UTF-8 lines from files or stdin as Strings, in batches of at most `size` lines.
struct LineReader {
    private var blocks: LineBlocks

    init(paths: [String]) { blocks = LineBlocks(paths: paths) }

    mutating func forEachBatch(size: Int = 8192, _ body: ([String]) throws -> Void) throws {
        var batch: [String] = []
        try blocks.forEach { buf, lines in
            for line in lines {
                batch.append(String(decoding: UnsafeBufferPointer(rebasing: buf[line]), as: UTF8.self))
                if batch.count >= size { try body(batch); batch.removeAll(keepingCapacity: true) }
            }
        }
        if !batch.isEmpty { try body(batch) }
    }
}
