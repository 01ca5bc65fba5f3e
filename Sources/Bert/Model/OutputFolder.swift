import BertTokenizer
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// The one writer of output folders. A folder is never written in place: its new content goes to a
// temporary sibling, every file there is fsynced, and only then does it take the folder's name, so
// a failed or killed write (full disk, a signal) leaves the old folder whole, or no folder. What a
// user made is not replaced unless they said so (`overwrite`).

/// A folder a command writes (a model, a fine-tuned head, prepared data).
public final class OutputFolder: @unchecked Sendable {
    /// The folder (standardized).
    public let url: URL
    private let overwrite: Bool
    /// Set once this object has put a folder in place: later replacements (a better epoch) replace
    /// our own output and need no flag.
    private var ours = false
    /// Files written beside the contents (eval_history.json), kept in every later replacement.
    private var extras: [(name: String, data: Data)] = []
    /// The folder cannot be renamed (a mount point, or its parent is not writable): new contents
    /// are written to a temporary folder inside it and each entry renamed into place.
    private let inPlace: Bool

    /// Whether this object has put a folder in place.
    public var written: Bool { ours }

    /// Claims `url`: refused when it is a file, or a folder that holds anything, unless `overwrite`;
    /// never the current folder (or one holding it), a pretraining run, or a folder another
    /// process has locked. Nothing is written until `replace`.
    /// `inputs`: the files and folders the command reads; one inside the folder (which a
    /// replacement would delete) is refused.
    public init(_ url: URL, overwrite: Bool, inputs: [URL] = []) throws {
        self.url = url.standardizedFileURL
        self.overwrite = overwrite
        let parent = self.url.deletingLastPathComponent()
        removeLeftovers(of: self.url)
        try Self.checkNotHolding(self.url, inputs: inputs)
        try Self.check(self.url, overwrite: overwrite)
        do { try makeFolder(parent) } catch BertError.fileAccess(_, let reason) {
            throw BertError.fileAccess(path: self.url.path, reason: "cannot create its parent folder (\(reason))")
        }
        var target = stat(), above = stat()
        let exists = stat(self.url.path, &target) == 0
        inPlace =
            exists
            && (stat(parent.path, &above) != 0 || target.st_dev != above.st_dev || access(parent.path, W_OK) != 0)
        // Whether the folder can be written at all is found out now, not after hours of training.
        let probe = inPlace ? self.url.appendingPathComponent(".probe-\(getpid())") : temporarySibling
        guard mkdir(probe.path, 0o755) == 0 || errno == EEXIST else {
            throw BertError.fileAccess(
                path: self.url.path,
                reason: "cannot write in \((inPlace ? self.url : parent).path): \(posixReason())")
        }
        rmdir(probe.path)
    }

    /// Where a new version of the folder is written before it takes the folder's name.
    private var temporarySibling: URL {
        url.deletingLastPathComponent().appendingPathComponent(".\(shortName(url)).tmp-\(getpid())")
    }

    /// Refuses a path that is a file, or a non-empty folder unless `overwrite`, and never replaces
    /// the current folder, a pretraining run or a folder in use.
    public static func check(_ url: URL, overwrite: Bool) throws {
        for folder in [url, url.deletingLastPathComponent()] {
            if let holder = FolderLock.holder(of: folder) { throw BertError.locked(path: folder.path, holder: holder) }
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else { return }
        guard isFolder.boolValue else {
            throw BertError.outputExists(path: url.path, reason: "is a file, not a folder")
        }
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
            throw BertError.fileAccess(
                path: url.path, reason: "cannot list it: \(fileErrorReason(error, path: url.path))")
        }
        if entries.contains("checkpoints") {
            throw BertError.outputExists(
                path: url.path, reason: "holds a pretraining run (checkpoints/), which is not replaced; choose another")
        }
        if !entries.isEmpty && !overwrite {
            let shown = entries.sorted().prefix(3).joined(separator: ", ")
            throw BertError.outputExists(
                path: url.path,
                reason: "already holds \(entries.count) entries (\(shown)\(entries.count > 3 ? ", ..." : "")); "
                    + "pass --overwrite to replace it")
        }
    }

    /// Refuses a folder whose replacement would delete where the command runs or what it reads:
    /// the current folder or one holding it, or a folder holding one of `inputs`.
    public static func checkNotHolding(_ url: URL, inputs: [URL]) throws {
        let path = url.standardizedFileURL.path
        let root = path.hasSuffix("/") ? path : path + "/"
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL.path
        if cwd == path || cwd.hasPrefix(root) {
            throw BertError.outputExists(path: path, reason: "is the current folder or holds it; choose another")
        }
        if let inside = inputs.first(where: { $0.standardizedFileURL.path.hasPrefix(root) }) {
            throw BertError.outputExists(
                path: path,
                reason: "holds the input \(inside.path), which writing the folder would delete; choose another")
        }
    }

    /// Writes the folder anew: `fill` writes the contents into an empty temporary folder, which is
    /// made durable and then takes the folder's place (the old one removed only after).
    public func replace(_ fill: (URL) throws -> Void) throws {
        if !ours { try Self.check(url, overwrite: overwrite) }
        if inPlace {
            try replaceFiles(in: url) { folder in
                try fill(folder)
                for extra in extras { try writeDurably(extra.data, to: folder.appendingPathComponent(extra.name)) }
            }
            ours = true
            return
        }
        try makeFolder(url.deletingLastPathComponent())
        let temporary = temporarySibling
        try? FileManager.default.removeItem(at: temporary)
        guard mkdir(temporary.path, 0o755) == 0 else {
            throw BertError.fileAccess(path: url.path, reason: "cannot write beside it: \(posixReason())")
        }
        do {
            try fill(temporary)
            for extra in extras { try writeDurably(extra.data, to: temporary.appendingPathComponent(extra.name)) }
            try syncFolder(temporary)
            try swap(temporary, into: url)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        ours = true
    }

    /// Writes one file into the folder now (atomically) and into every later replacement.
    public func writeExtra(_ name: String, _ data: Data) throws {
        extras.removeAll { $0.name == name }
        extras.append((name, data))
        if ours { try writeDurably(data, to: url.appendingPathComponent(name)) }
    }
}

/// Whether `pid` (a temporary name's suffix) names a process that no longer runs: its leftovers
/// are no one's work in progress.
private func isGone(_ pid: Substring) -> Bool {
    guard let pid = Int32(pid), pid != getpid() else { return false }
    return kill(pid, 0) != 0 && errno == ESRCH
}

/// The folder's name cut to fit beside a marker within a file name's 255 bytes.
private func shortName(_ url: URL) -> String {
    var name = url.lastPathComponent
    while name.utf8.count > 200 { name.removeLast() }
    return name
}

/// What a killed write left beside `target`: temporary folders of processes that are gone are
/// removed; a folder moved aside whose replacement never arrived is put back.
private func removeLeftovers(of target: URL) {
    let fm = FileManager.default
    let parent = target.deletingLastPathComponent()
    let name = shortName(target)
    for entry in (try? fm.contentsOfDirectory(atPath: parent.path)) ?? [] {
        for (marker, isAside) in [(".\(name).tmp-", false), (".\(name).old-", true)] where entry.hasPrefix(marker) {
            guard isGone(entry.dropFirst(marker.count)) else { continue }
            let url = parent.appendingPathComponent(entry)
            if isAside && !fm.fileExists(atPath: target.path) {
                _ = rename(url.path, target.path)
            } else {
                try? fm.removeItem(at: url)
            }
        }
    }
}

/// Writes files into a folder that holds other work too (a pretraining run's model files beside
/// its checkpoints): `fill` writes them into a temporary subfolder, which is made durable, and each
/// file is then renamed into `folder` (each rename atomic: a failed write changes nothing).
public func replaceFiles(in folder: URL, _ fill: (URL) throws -> Void) throws {
    try makeFolder(folder)
    let temporary = folder.appendingPathComponent(".files.tmp-\(getpid())")
    try? FileManager.default.removeItem(at: temporary)
    try makeFolder(temporary)
    defer { try? FileManager.default.removeItem(at: temporary) }
    try fill(temporary)
    try syncFolder(temporary)
    for name in try FileManager.default.contentsOfDirectory(atPath: temporary.path).sorted() {
        let target = folder.appendingPathComponent(name)
        // rename(2) replaces a file, not a folder that holds something (1_Pooling/).
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: target.path, isDirectory: &isFolder), isFolder.boolValue {
            try? FileManager.default.removeItem(at: target)
        }
        guard rename(temporary.appendingPathComponent(name).path, target.path) == 0 else {
            throw BertError.fileAccess(path: target.path, reason: "cannot rename into place: \(posixReason())")
        }
    }
    syncEntry(folder)
}

/// Puts `temporary` at `target`: an existing `target` is renamed aside first and removed once the
/// new folder has its name (there is no portable atomic exchange of two folders).
private func swap(_ temporary: URL, into target: URL) throws {
    let aside = target.deletingLastPathComponent().appendingPathComponent(".\(shortName(target)).old-\(getpid())")
    let exists = FileManager.default.fileExists(atPath: target.path)
    if exists {
        try? FileManager.default.removeItem(at: aside)
        guard rename(target.path, aside.path) == 0 else {
            throw BertError.fileAccess(path: target.path, reason: "cannot move it aside: \(posixReason())")
        }
    }
    guard rename(temporary.path, target.path) == 0 else {
        let reason = posixReason()
        if exists { _ = rename(aside.path, target.path) }
        throw BertError.fileAccess(path: target.path, reason: "cannot rename the new folder into place: \(reason)")
    }
    syncEntry(target.deletingLastPathComponent())
    if exists { try? FileManager.default.removeItem(at: aside) }
}

/// Creates a folder and its parents, with the system's reason when that fails.
func makeFolder(_ url: URL) throws {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) {
        if isFolder.boolValue { return }
        throw BertError.fileAccess(path: url.path, reason: "is a file, not a folder")
    }
    try makeFolder(url.deletingLastPathComponent())
    if mkdir(url.path, 0o755) != 0 && errno != EEXIST {
        throw BertError.fileAccess(path: url.path, reason: "cannot create the folder: \(posixReason())")
    }
}

/// Writes a file through a temporary sibling, fsynced before the rename.
func writeDurably(_ data: Data, to url: URL) throws {
    let temporary = url.path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw BertError.fileAccess(path: url.path, reason: "cannot create: \(posixReason())") }
    var failure: String? = nil
    data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                failure = posixReason()
                return
            }
            done += n
        }
    }
    if failure == nil && fsync(fd) != 0 { failure = posixReason() }
    if close(fd) != 0 && failure == nil { failure = posixReason() }
    if failure == nil && rename(temporary, url.path) != 0 { failure = posixReason() }
    if let failure {
        unlink(temporary)
        throw BertError.fileAccess(path: url.path, reason: "cannot write: \(failure)")
    }
}

/// fsyncs every regular file below `folder`, then the folders themselves.
private func syncFolder(_ folder: URL) throws {
    let fm = FileManager.default
    if let walker = fm.enumerator(atPath: folder.path) {
        for case let relative as String in walker {
            let path = folder.appendingPathComponent(relative)
            var isFolder: ObjCBool = false
            guard fm.fileExists(atPath: path.path, isDirectory: &isFolder) else { continue }
            if isFolder.boolValue { syncEntry(path); continue }
            let fd = open(path.path, O_RDONLY)
            guard fd >= 0 else { continue }
            let synced = fsync(fd) == 0
            let reason = synced ? "" : posixReason()
            close(fd)
            if !synced { throw BertError.fileAccess(path: path.path, reason: "fsync failed: \(reason)") }
        }
    }
    syncEntry(folder)
}

/// Best effort: persists a folder's entries (a rename into it).
private func syncEntry(_ folder: URL) {
    let fd = open(folder.path, O_RDONLY)
    if fd >= 0 {
        _ = fsync(fd)
        close(fd)
    }
}

func posixReason() -> String { String(cString: strerror(errno)) }

/// An output file (a vocabulary, a features file): refused when it exists unless `overwrite`, or
/// when it is a folder.
public func checkOutputFile(_ url: URL, overwrite: Bool, inputs: [URL] = []) throws {
    // Never one of the inputs, nor a file inside an input folder (a model's own weights).
    let target = url.standardizedFileURL.path
    for input in inputs.map({ $0.standardizedFileURL.path }) where target == input || target.hasPrefix(input + "/") {
        throw BertError.outputExists(path: url.path, reason: "is an input of this command (\(input)); choose another")
    }
    // Temporary files of writes that were killed (their process is gone).
    let folder = url.deletingLastPathComponent(), name = url.lastPathComponent
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    where entry.hasPrefix(name + ".tmp-") {
        if isGone(entry.dropFirst(name.count + 5)) { unlink(folder.appendingPathComponent(entry).path) }
    }
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) {
        if isFolder.boolValue { throw BertError.outputExists(path: url.path, reason: "is a folder, not a file") }
        if !overwrite { throw BertError.outputExists(path: url.path, reason: "exists; pass --overwrite to replace it") }
    }
    // Whether it can be written at all is found out now, before the work that makes it.
    let probe = url.path + ".tmp-\(getpid())"
    let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 || errno == EEXIST else {
        throw BertError.fileAccess(
            path: url.path, reason: "cannot write in \(url.deletingLastPathComponent().path): \(posixReason())")
    }
    if fd >= 0 {
        close(fd)
        unlink(probe)
    }
}

/// An exclusive lock on a folder a command works in for long (a pretraining run, prepared
/// shards), held while the value lives: a second process on the same folder is refused at once,
/// naming the first, instead of racing it on the same files. Within one process the lock is
/// shared (the command and the run it starts both hold it).
public final class FolderLock: @unchecked Sendable {
    private let path: String
    nonisolated(unsafe) private static var held: [String: (fd: Int32, holders: Int)] = [:]
    private static let guardLock = NSLock()

    /// Creates `folder` if needed and locks it, noting `command` and this process's id
    /// in its .lock file; throws ``BertError/locked(path:holder:)`` when another process holds it.
    public init(_ folder: URL, command: String) throws {
        try makeFolder(folder)
        path = folder.standardizedFileURL.appendingPathComponent(".lock").path
        Self.guardLock.lock()
        defer { Self.guardLock.unlock() }
        if let entry = Self.held[path] {
            Self.held[path] = (entry.fd, entry.holders + 1)
            return
        }
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw BertError.fileAccess(path: path, reason: "cannot create: \(posixReason())") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = pread(fd, &buffer, buffer.count, 0)
            let holder = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw BertError.locked(path: folder.path, holder: holder.isEmpty ? "another process" : holder)
        }
        let note = Array("\(command) (process \(getpid()))\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, note, note.count, 0)
        Self.held[path] = (fd, 1)
    }

    /// The holder of `folder`'s lock when another process holds it now (nil: free, or no lock).
    public static func holder(of folder: URL) -> String? {
        let path = folder.standardizedFileURL.appendingPathComponent(".lock").path
        guardLock.lock()
        let ours = held[path] != nil
        guardLock.unlock()
        if ours { return nil }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = pread(fd, &buffer, buffer.count, 0)
        let holder = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return holder.isEmpty ? "another process" : holder
    }

    deinit {
        Self.guardLock.lock()
        defer { Self.guardLock.unlock() }
        guard let entry = Self.held[path] else { return }
        if entry.holders > 1 {
            Self.held[path] = (entry.fd, entry.holders - 1)
        } else {
            close(entry.fd)
            Self.held[path] = nil
        }
    }
}
