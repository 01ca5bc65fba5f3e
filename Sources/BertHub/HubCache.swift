import Foundation

/// One model's part of the cache, laid out as `huggingface_hub` lays it out:
///
///     <cache>/models--ORG--NAME/refs/<revision>            the commit a branch or tag names
///     <cache>/models--ORG--NAME/snapshots/<commit>/<file>  a relative symlink into blobs/
///     <cache>/models--ORG--NAME/blobs/<etag>               each file's content, once
///     <cache>/models--ORG--NAME/blobs/<etag>.incomplete    a download in progress (resumable)
///     <cache>/.locks/models--ORG--NAME/<etag>.lock         held (flock) while a blob is fetched
///
/// so that a cache Python filled serves Swift, and the other way round.
public struct HubCache: Sendable {
    /// The cache folder (`HubSettings.cache`).
    public let root: URL
    /// The model.
    public let repo: RepoID

    /// The layout of `repo` in the cache at `root`.
    public init(root: URL, repo: RepoID) {
        self.root = root
        self.repo = repo
    }

    /// `models--ORG--NAME`.
    public var folder: URL { root.appendingPathComponent(repo.cacheFolderName, isDirectory: true) }
    var blobs: URL { folder.appendingPathComponent("blobs", isDirectory: true) }

    /// The folder of one commit's files.
    public func snapshot(_ commit: String) -> URL {
        folder.appendingPathComponent("snapshots", isDirectory: true).appendingPathComponent(commit, isDirectory: true)
    }

    /// The commit `revision` stands for in the cache: itself when it is a full commit hash, else
    /// what `refs/<revision>` records (nil when the cache has never resolved it).
    public func commit(for revision: String) -> String? {
        if isCommitHash(revision) { return revision }
        guard let text = try? String(contentsOf: ref(revision), encoding: .utf8) else { return nil }
        let commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return isCommitHash(commit) ? commit : nil
    }

    func ref(_ revision: String) -> URL { folder.appendingPathComponent("refs").appendingPathComponent(revision) }
    func blob(_ etag: String) -> URL { blobs.appendingPathComponent(etag) }
    func partial(_ etag: String) -> URL { blobs.appendingPathComponent(etag + ".incomplete") }
    func lock(_ etag: String) -> URL {
        root.appendingPathComponent(".locks").appendingPathComponent(repo.cacheFolderName)
            .appendingPathComponent(etag + ".lock")
    }

    /// Records that `revision` names `commit` (written whole: a temporary file, then renamed).
    func setRef(_ revision: String, to commit: String) throws {
        guard revision != commit else { return }
        let url = ref(revision)
        if (try? String(contentsOf: url, encoding: .utf8)) == commit { return }
        try createFolder(url.deletingLastPathComponent())
        let temporary = url.deletingLastPathComponent().appendingPathComponent(
            ".\(url.lastPathComponent).\(UUID().uuidString.prefix(8)).tmp")
        do {
            try Data(commit.utf8).write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else { throw posixError("cannot rename into place") }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw HubError.cacheAccess(path: url.path, reason: "cannot write the ref (\(error))")
        }
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative symlink, as
    /// `huggingface_hub` does (the cache folder can then be moved whole), replacing any link there.
    func link(_ file: String, commit: String, etag: String) throws {
        let target = snapshot(commit).appendingPathComponent(file)
        try createFolder(target.deletingLastPathComponent())
        let depth = file.split(separator: "/").count + 1  // up from the file's folder to models--ORG--NAME
        let relative = String(repeating: "../", count: depth) + "blobs/" + etag
        let temporary = target.deletingLastPathComponent().appendingPathComponent(
            ".\(target.lastPathComponent).\(UUID().uuidString.prefix(8)).link")
        guard symlink(relative, temporary.path) == 0 else {
            throw HubError.cacheAccess(path: temporary.path, reason: "cannot create a symlink (\(errnoText()))")
        }
        guard rename(temporary.path, target.path) == 0 else {
            let reason = errnoText()
            unlink(temporary.path)
            throw HubError.cacheAccess(path: target.path, reason: "cannot link the file into place (\(reason))")
        }
    }

    /// Tags the cache folder as a cache (https://bford.info/cachedir/), as huggingface_hub does,
    /// so that backup tools skip it.
    func markAsCache() throws {
        let tag = root.appendingPathComponent("CACHEDIR.TAG")
        guard !FileManager.default.fileExists(atPath: tag.path) else { return }
        try createFolder(root)
        let text =
            "Signature: 8a477f597d28d172789f06886806bc55\n# A Hugging Face model cache (written by swift-bert).\n"
        try? Data(text.utf8).write(to: tag, options: .atomic)
    }

    func createFolder(_ url: URL) throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw HubError.cacheAccess(
                path: url.path, reason: "cannot create the folder (\(error.localizedDescription))")
        }
    }

    private func posixError(_ what: String) -> HubError {
        HubError.cacheAccess(path: folder.path, reason: "\(what) (\(errnoText()))")
    }
}

/// A full 40-digit commit hash (lowercase hex), as the hub reports and refs/ records.
func isCommitHash(_ s: String) -> Bool {
    s.utf8.count == 40 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
}

/// A path inside a repository that is safe to create under a snapshot: relative, no empty, `.`
/// or `..` component (a hostile listing cannot write outside the cache).
func isSafeRepoPath(_ path: String) -> Bool {
    guard !path.isEmpty, !path.hasPrefix("/"), !path.contains("\\"), !path.utf8.contains(0) else { return false }
    return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy {
        !$0.isEmpty && $0 != "." && $0 != ".."
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
