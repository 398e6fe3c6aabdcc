using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Berth.Logs.Filtering;

/// <summary>
/// A CloudWatch Logs filter pattern, parsed once and matched against each message. Two forms:
/// terms (<c>ERROR "disk full" ?WARN ?INFO -debug %re%</c>: every plain term must occur, at least one <c>?</c>
/// term when there are any, no <c>-</c> term; case-sensitive substrings) and JSON filters
/// (<c>{ $.level = "error" &amp;&amp; $.status &gt;= 400 }</c>) matched against messages that are JSON.
/// </summary>
public abstract class FilterPattern
{
    public const string InvalidMessage = "Invalid filter pattern";

    public abstract bool Matches(string message);

    private sealed class All : FilterPattern
    {
        public override bool Matches(string message) => true;
    }

    /// <summary>Parses a pattern; <see cref="FormatException"/> when it is not one.</summary>
    public static FilterPattern Parse(string? pattern)
    {
        var p = (pattern ?? "").Trim();
        if (p.Length == 0)
        {
            return new All();
        }
        if (p[0] == '{')
        {
            return JsonFilter.Create(p);
        }
        if (p[0] == '[')
        {
            throw new FormatException("space-delimited filter patterns ([a, b, ...]) are not supported");
        }
        return TermFilter.Create(p);
    }
}

internal sealed class TermFilter : FilterPattern
{
    private readonly List<Func<string, bool>> _required = [];
    private readonly List<Func<string, bool>> _any = [];
    private readonly List<Func<string, bool>> _excluded = [];

    public override bool Matches(string message)
    {
        foreach (var t in _required)
        {
            if (!t(message))
            {
                return false;
            }
        }
        foreach (var t in _excluded)
        {
            if (t(message))
            {
                return false;
            }
        }
        if (_any.Count == 0)
        {
            return true;
        }
        foreach (var t in _any)
        {
            if (t(message))
            {
                return true;
            }
        }
        return false;
    }

    public static TermFilter Create(string p)
    {
        var f = new TermFilter();
        var i = 0;
        while (i < p.Length)
        {
            if (char.IsWhiteSpace(p[i]))
            {
                i++;
                continue;
            }
            var list = f._required;
            if (p[i] == '?')
            {
                list = f._any;
                i++;
            }
            else if (p[i] == '-' && i + 1 < p.Length && !char.IsWhiteSpace(p[i + 1]))
            {
                list = f._excluded;
                i++;
            }
            if (i >= p.Length || char.IsWhiteSpace(p[i]))
            {
                throw new FormatException("an operator without a term");
            }
            if (p[i] == '"')
            {
                var text = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= p.Length)
                    {
                        throw new FormatException("unterminated quoted phrase");
                    }
                    if (p[i] == '\\' && i + 1 < p.Length)
                    {
                        text.Append(p[i + 1]);
                        i += 2;
                        continue;
                    }
                    if (p[i] == '"')
                    {
                        i++;
                        break;
                    }
                    text.Append(p[i++]);
                }
                if (i < p.Length && !char.IsWhiteSpace(p[i]))
                {
                    throw new FormatException("a quoted phrase must end a term");
                }
                var phrase = text.ToString();
                list.Add(m => m.Contains(phrase, StringComparison.Ordinal));
                continue;
            }
            if (p[i] == '%')
            {
                var end = p.IndexOf('%', i + 1);
                if (end < 0 || end == i + 1)
                {
                    throw new FormatException("unterminated regular expression");
                }
                Regex re;
                try
                {
                    re = new Regex(p[(i + 1)..end], RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(50));
                }
                catch (ArgumentException e)
                {
                    throw new FormatException(e.Message);
                }
                list.Add(m =>
                {
                    try
                    {
                        return re.IsMatch(m);
                    }
                    catch (RegexMatchTimeoutException)
                    {
                        return false;
                    }
                });
                i = end + 1;
                continue;
            }
            var start = i;
            while (i < p.Length && !char.IsWhiteSpace(p[i]))
            {
                if (p[i] is '"' or '{' or '}' or '[' or ']')
                {
                    throw new FormatException($"unexpected '{p[i]}' in a term");
                }
                i++;
            }
            var term = p[start..i];
            list.Add(m => m.Contains(term, StringComparison.Ordinal));
        }
        return f;
    }
}

/// <summary>A JSON filter: comparisons on selectors (<c>$.a.b[0]</c>) joined by &amp;&amp; and ||, with parentheses.</summary>
internal sealed class JsonFilter : FilterPattern
{
    private readonly Node _root;

    private JsonFilter(Node root) => _root = root;

    public override bool Matches(string message)
    {
        var m = message.AsSpan().TrimStart();
        if (m.Length == 0 || (m[0] != '{' && m[0] != '['))
        {
            return false;
        }
        try
        {
            using var doc = JsonDocument.Parse(message);
            return _root.Eval(doc.RootElement);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public static JsonFilter Create(string p)
    {
        var lexer = new Lexer(p);
        lexer.Expect("{");
        var node = ParseOr(lexer);
        lexer.Expect("}");
        if (!lexer.AtEnd)
        {
            throw new FormatException("text after the closing '}'");
        }
        return new JsonFilter(node);
    }

    private static Node ParseOr(Lexer l)
    {
        var left = ParseAnd(l);
        while (l.TryTake("||"))
        {
            var right = ParseAnd(l);
            var a = left;
            left = new Node(e => a.Eval(e) || right.Eval(e));
        }
        return left;
    }

    private static Node ParseAnd(Lexer l)
    {
        var left = ParseUnary(l);
        while (l.TryTake("&&"))
        {
            var right = ParseUnary(l);
            var a = left;
            left = new Node(e => a.Eval(e) && right.Eval(e));
        }
        return left;
    }

    private static Node ParseUnary(Lexer l)
    {
        if (l.TryTake("("))
        {
            var inner = ParseOr(l);
            l.Expect(")");
            return inner;
        }
        var path = ParseSelector(l);
        if (l.TryWord("IS"))
        {
            if (l.TryWord("NULL"))
            {
                return new Node(e => Select(e, path) is { ValueKind: JsonValueKind.Null });
            }
            if (l.TryWord("TRUE"))
            {
                return new Node(e => Select(e, path) is { ValueKind: JsonValueKind.True });
            }
            if (l.TryWord("FALSE"))
            {
                return new Node(e => Select(e, path) is { ValueKind: JsonValueKind.False });
            }
            throw new FormatException("IS takes NULL, TRUE or FALSE");
        }
        if (l.TryWord("NOT"))
        {
            if (!l.TryWord("EXISTS"))
            {
                throw new FormatException("NOT takes EXISTS");
            }
            return new Node(e => Select(e, path) is null);
        }
        if (l.TryWord("EXISTS"))
        {
            return new Node(e => Select(e, path) is not null);
        }
        var op = l.Operator() ?? throw new FormatException("expected a comparison operator");
        var (value, quoted) = l.Value();
        if (!quoted && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
        {
            Func<double, bool> test = op switch
            {
                "=" => x => x == number,
                "!=" => x => x != number,
                "<" => x => x < number,
                ">" => x => x > number,
                "<=" => x => x <= number,
                _ => x => x >= number,
            };
            return new Node(e => Select(e, path) is { ValueKind: JsonValueKind.Number } v && v.TryGetDouble(out var d) && test(d));
        }
        if (op is not ("=" or "!="))
        {
            throw new FormatException($"'{op}' compares numbers, not '{value}'");
        }
        Func<string, bool> eq;
        if (value.Contains('*', StringComparison.Ordinal))
        {
            var re = new Regex("^" + string.Join(".*", value.Split('*').Select(Regex.Escape)) + "$", RegexOptions.Singleline | RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(50));
            eq = s => re.IsMatch(s);
        }
        else
        {
            eq = s => string.Equals(s, value, StringComparison.Ordinal);
        }
        var literal = !quoted && value is "true" or "false" or "null";
        return new Node(e =>
        {
            if (Select(e, path) is not { } v || v.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
            {
                return false;
            }
            if (v.ValueKind == JsonValueKind.Null && !literal)
            {
                return false;
            }
            var text = v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();
            return op == "=" ? eq(text) : !eq(text);
        });
    }

    /// <summary>$.a.b[2]["x y"] as a list of property names (string) and indexes (int).</summary>
    private static List<object> ParseSelector(Lexer l)
    {
        if (!l.TryTake("$"))
        {
            throw new FormatException("a JSON filter selector starts with '$'");
        }
        var path = new List<object>();
        while (true)
        {
            if (l.TryTakeTight("."))
            {
                var name = l.Identifier() ?? throw new FormatException("expected a property name after '.'");
                path.Add(name);
            }
            else if (l.TryTakeTight("["))
            {
                var n = l.Identifier() ?? throw new FormatException("expected an index");
                if (!int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var idx))
                {
                    throw new FormatException("an index is a number");
                }
                l.Expect("]");
                path.Add(idx);
            }
            else
            {
                break;
            }
        }
        if (path.Count == 0)
        {
            throw new FormatException("a selector names a property: $.name");
        }
        return path;
    }

    private static JsonElement? Select(JsonElement root, List<object> path)
    {
        var e = root;
        foreach (var step in path)
        {
            if (step is string name)
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(name, out e))
                {
                    return null;
                }
            }
            else
            {
                var i = (int)step;
                if (e.ValueKind != JsonValueKind.Array || i >= e.GetArrayLength())
                {
                    return null;
                }
                e = e[i];
            }
        }
        return e;
    }

    private sealed class Node(Func<JsonElement, bool> eval)
    {
        public bool Eval(JsonElement e) => eval(e);
    }

    private sealed class Lexer(string text)
    {
        private int _i;

        public bool AtEnd
        {
            get
            {
                SkipSpace();
                return _i >= text.Length;
            }
        }

        private void SkipSpace()
        {
            while (_i < text.Length && char.IsWhiteSpace(text[_i]))
            {
                _i++;
            }
        }

        public bool TryTake(string token)
        {
            SkipSpace();
            return TryTakeTight(token);
        }

        public bool TryTakeTight(string token)
        {
            if (string.CompareOrdinal(text, _i, token, 0, token.Length) == 0)
            {
                _i += token.Length;
                return true;
            }
            return false;
        }

        public void Expect(string token)
        {
            if (!TryTake(token))
            {
                throw new FormatException($"expected '{token}'");
            }
        }

        public bool TryWord(string word)
        {
            SkipSpace();
            var end = _i + word.Length;
            if (end <= text.Length && string.Compare(text, _i, word, 0, word.Length, StringComparison.OrdinalIgnoreCase) == 0
                && (end == text.Length || !IsIdent(text[end])))
            {
                _i = end;
                return true;
            }
            return false;
        }

        private static bool IsIdent(char c) => char.IsLetterOrDigit(c) || c is '_' or '-' or '@' or ':';

        public string? Identifier()
        {
            var start = _i;
            while (_i < text.Length && IsIdent(text[_i]))
            {
                _i++;
            }
            return _i > start ? text[start.._i] : null;
        }

        public string? Operator()
        {
            SkipSpace();
            foreach (var op in (string[])["!=", "<=", ">=", "=", "<", ">"])
            {
                if (TryTakeTight(op))
                {
                    return op;
                }
            }
            return null;
        }

        public (string Value, bool Quoted) Value()
        {
            SkipSpace();
            if (_i < text.Length && text[_i] == '"')
            {
                var sb = new StringBuilder();
                _i++;
                while (true)
                {
                    if (_i >= text.Length)
                    {
                        throw new FormatException("unterminated string");
                    }
                    if (text[_i] == '\\' && _i + 1 < text.Length)
                    {
                        sb.Append(text[_i + 1]);
                        _i += 2;
                        continue;
                    }
                    if (text[_i] == '"')
                    {
                        _i++;
                        return (sb.ToString(), true);
                    }
                    sb.Append(text[_i++]);
                }
            }
            var start = _i;
            while (_i < text.Length && !char.IsWhiteSpace(text[_i]) && text[_i] is not ('}' or ')' or '&' or '|'))
            {
                _i++;
            }
            if (_i == start)
            {
                throw new FormatException("expected a value");
            }
            return (text[start.._i], false);
        }
    }
}
