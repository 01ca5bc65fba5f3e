import Foundation

/// Why a file could not be read or written, in the system's words ("Permission denied", "is a
/// folder, not a file"), not Foundation's error domains and codes.
public func fileErrorReason(_ error: Error, path: String) -> String {
    var isFolder: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
    if exists && isFolder.boolValue { return "is a folder, not a file" }
    var info = stat()
    if exists, stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
        return "is not a regular file (a pipe, socket or device)"
    }
    let ns = error as NSError
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if !exists {
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && !FileManager.default.fileExists(atPath: parent) { return "no folder \(parent)" }
        if ns.domain == NSCocoaErrorDomain && ns.code == CocoaError.fileReadNoSuchFile.rawValue {
            return "no such file"
        }
    }
    switch CocoaError.Code(rawValue: ns.code) {
    case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
    case .fileReadNoSuchFile: return "no such file"
    case .fileWriteOutOfSpace: return "no space left on the device"
    case .fileWriteVolumeReadOnly: return "the file system is read-only"
    default: break
    }
    // Foundation's message without its domain and code.
    let text = ns.localizedDescription
    if let cut = text.range(of: " (NSCocoaErrorDomain") { return String(text[..<cut.lowerBound]) }
    return text
}

/// The bytes of a UTF-8 file without a leading byte-order mark (editors on Windows write one; a
/// JSON or text reader must not see it as content).
public func droppingByteOrderMark(_ data: Data) -> Data {
    data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data
}
