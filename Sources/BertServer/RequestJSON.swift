import Foundation

/// A request's JSON body, read with errors that name the field (422), as text-embeddings-inference
/// reports them.
struct RequestJSON {
    let object: [String: Any]

    init(_ data: Data) throws {
        guard !data.isEmpty else { throw APIError.validation("the request has no JSON body") }
        guard let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            throw APIError.validation("the request body is not JSON")
        }
        guard let object = value as? [String: Any] else {
            throw APIError.validation("the request body is not a JSON object")
        }
        self.object = object
    }

    /// A JSON object already read (a nested one, as /similarity's `inputs`).
    init(object: [String: Any]) { self.object = object }

    /// `field` as one string or a list of strings (at least one; none empty).
    func texts(_ field: String, maxCount: Int) throws -> (texts: [String], single: Bool) {
        guard let value = object[field] else { throw APIError.validation("missing field `\(field)`") }
        if let text = value as? String { return ([try nonEmpty(text, field)], true) }
        guard let list = value as? [Any] else {
            throw APIError.validation("`\(field)` must be a string or a list of strings")
        }
        guard !list.isEmpty else { throw APIError.validation("`\(field)` cannot be empty") }
        guard list.count <= maxCount else {
            throw APIError.validation(
                "`\(field)` has \(list.count) inputs, more than the client batch size \(maxCount)")
        }
        return (
            try list.enumerated().map { i, item in
                guard let text = item as? String else { throw APIError.validation("`\(field)[\(i)]` must be a string") }
                return try nonEmpty(text, "\(field)[\(i)]")
            }, false
        )
    }

    private func nonEmpty(_ text: String, _ field: String) throws -> String {
        guard !text.isEmpty else { throw APIError.validation("`\(field)` cannot be empty") }
        return text
    }

    func bool(_ field: String) throws -> Bool? {
        guard let value = object[field], !(value is NSNull) else { return nil }
        // JSONSerialization reads true/false as NSNumber; a number 0/1 is not a boolean here.
        guard let number = value as? NSNumber, isBoolean(number) else {
            throw APIError.validation("`\(field)` must be true or false")
        }
        return number.boolValue
    }

    func int(_ field: String) throws -> Int? {
        guard let value = object[field], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !isBoolean(number),
            let n = Int(exactly: number.doubleValue)
        else { throw APIError.validation("`\(field)` must be an integer") }
        return n
    }

    func string(_ field: String) throws -> String? {
        guard let value = object[field], !(value is NSNull) else { return nil }
        guard let s = value as? String else { throw APIError.validation("`\(field)` must be a string") }
        return s
    }
}

/// JSON's true and false, told from numbers: JSONSerialization makes both NSNumbers, booleans of
/// type "c".
func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }
