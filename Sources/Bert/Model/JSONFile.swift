import BertTokenizer
import Foundation

/// A JSON file's value (a byte-order mark dropped), with the project's errors: one that cannot be
/// read is a `fileAccess`, one that is not JSON a `malformedFile`.
func readJSON(_ url: URL) throws -> Any {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw BertError.fileAccess(path: url.path, reason: "cannot read: \(fileErrorReason(error, path: url.path))")
    }
    do { return try JSONSerialization.jsonObject(with: droppingByteOrderMark(data)) } catch {
        throw BertError.malformedFile(path: url.path, reason: "invalid JSON")
    }
}
