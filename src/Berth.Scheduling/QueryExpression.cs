using System.Globalization;
using System.Text.RegularExpressions;

namespace Berth.Scheduling;

/// <summary>
/// ECS's cluster query language: <c>subject operator [argument]</c> terms joined with
/// <c>and</c>/<c>&amp;&amp;</c>, <c>or</c>/<c>||</c>, <c>not</c>/<c>!</c> and parentheses,
/// evaluated against one <see cref="InstanceCandidate"/>.
/// </summary>
/// <remarks>
/// Subjects and the operators ECS lists for each: <c>attribute:NAME</c> (every operator),
/// <c>ec2InstanceId</c>, <c>agentConnected</c> and <c>task:group</c> (==, !=, in, not_in, =~, !~),
/// <c>agentVersion</c>, <c>registeredAt</c> and <c>runningTasksCount</c> (==, !=, &gt;, &gt;=, &lt;, &lt;=).
/// Anything else is refused when parsing, with the term named, so an expression is never accepted and
/// then quietly evaluated as false. Parsed once per request; <see cref="Matches"/> runs once per
/// candidate and only compares what the parse prepared.
/// </remarks>
public sealed class QueryExpression
{
    private const int MaxDepth = 64;
    private static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(50);

    private readonly Node _root;

    private QueryExpression(string text, Node root, bool usesTaskGroups)
    {
        Text = text;
        _root = root;
        UsesTaskGroups = usesTaskGroups;
    }

    public string Text { get; }

    /// <summary>True when a term reads <c>task:group</c>: the answer then depends on the tasks on each instance.</summary>
    public bool UsesTaskGroups { get; }

    public static bool TryParse(string text, out QueryExpression? expression, out string? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        expression = null;
        var parser = new Parser(text);
        try
        {
            var root = parser.ParseExpression();
            parser.SkipSpace();
            if (!parser.AtEnd)
            {
                throw parser.Error($"unexpected '{parser.Rest}'");
            }
            expression = new QueryExpression(text, root, parser.UsesTaskGroups);
            error = null;
            return true;
        }
        catch (QuerySyntaxException e)
        {
            error = e.Message;
            return false;
        }
    }

    public static QueryExpression Parse(string text)
        => TryParse(text, out var e, out var error) ? e! : throw new FormatException(error);

    public bool Matches(InstanceCandidate candidate)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        return _root.Eval(candidate);
    }

    private sealed class QuerySyntaxException(string message) : Exception(message);

    private enum Op
    {
        Equal,
        NotEqual,
        Greater,
        GreaterOrEqual,
        Less,
        LessOrEqual,
        Exists,
        NotExists,
        In,
        NotIn,
        Matches,
        NotMatches,
    }

    private enum Subject
    {
        Attribute,
        Ec2InstanceId,
        AgentConnected,
        AgentVersion,
        RegisteredAt,
        RunningTasksCount,
        TaskGroup,
    }

    private abstract class Node
    {
        public abstract bool Eval(InstanceCandidate c);
    }

    private sealed class And(Node[] parts) : Node
    {
        public override bool Eval(InstanceCandidate c)
        {
            foreach (var p in parts)
            {
                if (!p.Eval(c))
                {
                    return false;
                }
            }
            return true;
        }
    }

    private sealed class Or(Node[] parts) : Node
    {
        public override bool Eval(InstanceCandidate c)
        {
            foreach (var p in parts)
            {
                if (p.Eval(c))
                {
                    return true;
                }
            }
            return false;
        }
    }

    private sealed class Not(Node inner) : Node
    {
        public override bool Eval(InstanceCandidate c) => !inner.Eval(c);
    }

    /// <summary>One term. Negative operators are the negation of their positive twin, so a missing value satisfies them.</summary>
    private sealed class Term : Node
    {
        private readonly Subject _subject;
        private readonly string? _attribute;
        private readonly Op _positive;
        private readonly bool _negate;
        private readonly string[] _args;
        private readonly Regex? _regex;
        // Prepared comparands: numbers, versions and times parsed once.
        private readonly long _number;
        private readonly Version? _version;
        private readonly DateTimeOffset _time;
        private readonly bool _dateOnly;

        public Term(Subject subject, string? attribute, Op op, string[] args, Func<string, QuerySyntaxException> error)
        {
            _subject = subject;
            _attribute = attribute;
            (_positive, _negate) = op switch
            {
                Op.NotEqual => (Op.Equal, true),
                Op.NotExists => (Op.Exists, true),
                Op.NotIn => (Op.In, true),
                Op.NotMatches => (Op.Matches, true),
                _ => (op, false),
            };
            _args = args;
            if (_positive == Op.Matches)
            {
                _regex = CompileRegex(args[0], error);
            }
            else if (subject == Subject.RunningTasksCount && !long.TryParse(args[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out _number))
            {
                throw error($"runningTasksCount needs a whole number, not '{args[0]}'");
            }
            else if (subject == Subject.AgentVersion && (_version = ParseVersion(args[0])) is null)
            {
                throw error($"agentVersion needs a version such as 1.14.5, not '{args[0]}'");
            }
            else if (subject == Subject.RegisteredAt && !TryParseTime(args[0], out _time, out _dateOnly))
            {
                throw error($"registeredAt needs a date such as 2018-06-18 or 2018-06-18T22:28:28Z, not '{args[0]}'");
            }
        }

        public override bool Eval(InstanceCandidate c) => Positive(c) != _negate;

        private bool Positive(InstanceCandidate c)
        {
            switch (_subject)
            {
                case Subject.TaskGroup:
                    // True when the instance runs at least one live task whose group satisfies the operator.
                    foreach (var (group, count) in c.GroupCounts)
                    {
                        if (count > 0 && StringTest(group))
                        {
                            return true;
                        }
                    }
                    return false;
                case Subject.RunningTasksCount:
                    return Compare(((long)c.RunningTasksCount).CompareTo(_number));
                case Subject.AgentVersion:
                    return ParseVersion(c.AgentVersion) is { } v && Compare(v.CompareTo(_version));
                case Subject.RegisteredAt:
                    if (c.RegisteredAt is not { } at)
                    {
                        return false;
                    }
                    // A date alone compares by day: "registeredAt < 2018-06-18" is anything registered before that day.
                    return Compare(_dateOnly ? at.UtcDateTime.Date.CompareTo(_time.UtcDateTime.Date) : at.CompareTo(_time));
                case Subject.AgentConnected:
                    return StringTest(c.AgentConnected ? "true" : "false", StringComparison.OrdinalIgnoreCase);
                case Subject.Ec2InstanceId:
                    return c.Ec2InstanceId is { } id && StringTest(id);
                default:
                    if (!c.Attributes.TryGetValue(_attribute!, out var value))
                    {
                        return false; // "exists" is false too
                    }
                    return _positive switch
                    {
                        Op.Exists => true,
                        Op.Greater or Op.GreaterOrEqual or Op.Less or Op.LessOrEqual => Compare(CompareAttribute(value, _args[0])),
                        _ => StringTest(value),
                    };
            }
        }

        private bool StringTest(string value, StringComparison comparison = StringComparison.Ordinal)
        {
            switch (_positive)
            {
                case Op.Equal:
                    return string.Equals(value, _args[0], comparison);
                case Op.In:
                    foreach (var a in _args)
                    {
                        if (string.Equals(value, a, comparison))
                        {
                            return true;
                        }
                    }
                    return false;
                case Op.Matches:
                    try
                    {
                        return _regex!.IsMatch(value);
                    }
                    catch (RegexMatchTimeoutException)
                    {
                        return false;
                    }
                default:
                    return false;
            }
        }

        private bool Compare(int order) => _positive switch
        {
            Op.Equal => order == 0,
            Op.Greater => order > 0,
            Op.GreaterOrEqual => order >= 0,
            Op.Less => order < 0,
            Op.LessOrEqual => order <= 0,
            _ => false,
        };

        /// <summary>Attribute values compare as numbers when both sides are numbers, else as ordinal strings.</summary>
        private static int CompareAttribute(string value, string argument)
            => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var a)
                && double.TryParse(argument, NumberStyles.Float, CultureInfo.InvariantCulture, out var b)
                ? a.CompareTo(b)
                : string.CompareOrdinal(value, argument);
    }

    /// <summary>ECS documents Java's regex syntax and whole-value matching (Pattern.matches); .NET's is close enough for the patterns people write.</summary>
    private static Regex CompileRegex(string pattern, Func<string, QuerySyntaxException> error)
    {
        var anchored = "^(?:" + pattern + ")$";
        try
        {
            // No backtracking: a pattern from a request can never make matching slow.
            return new Regex(anchored, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
        }
        catch (NotSupportedException)
        {
            // Lookarounds and back-references need the backtracking engine; a timeout bounds it.
        }
        catch (ArgumentException e)
        {
            throw error($"'{pattern}' is not a valid regular expression ({e.Message})");
        }
        try
        {
            return new Regex(anchored, RegexOptions.CultureInvariant, RegexTimeout);
        }
        catch (ArgumentException e)
        {
            throw error($"'{pattern}' is not a valid regular expression ({e.Message})");
        }
    }

    /// <summary>"1.14.5", "v1.14.5", "1.14.5-dev": the numeric part, missing parts as 0.</summary>
    private static Version? ParseVersion(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        var t = text.Trim().TrimStart('v', 'V');
        var end = t.IndexOfAny(['-', '+', ' ']);
        if (end >= 0)
        {
            t = t[..end];
        }
        var parts = t.Split('.');
        if (parts.Length is < 1 or > 4)
        {
            return null;
        }
        var n = new int[4];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out n[i]))
            {
                return null;
            }
        }
        return new Version(n[0], n[1], n[2], n[3]);
    }

    // The formats ECS lists: 2018-06-18T22:28:28+00:00, 2018-06-18T22:28:28Z, 2018-06-18T22:28:28 (UTC), 2018-06-18.
    private static readonly string[] TimeFormats = ["yyyy-MM-dd'T'HH:mm:sszzz", "yyyy-MM-dd'T'HH:mm:ss'Z'", "yyyy-MM-dd'T'HH:mm:ss"];

    private static bool TryParseTime(string text, out DateTimeOffset time, out bool dateOnly)
    {
        dateOnly = false;
        if (DateTimeOffset.TryParseExact(text, TimeFormats, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out time))
        {
            return true;
        }
        dateOnly = DateTimeOffset.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out time);
        return dateOnly;
    }

    /// <summary>Recursive descent over the text; `or` binds loosest, then `and`, then `not`.</summary>
    private sealed class Parser(string text)
    {
        private int _at;
        private int _depth;

        public bool UsesTaskGroups { get; private set; }

        public bool AtEnd => _at >= text.Length;

        public string Rest => text[_at..];

        public QuerySyntaxException Error(string message) => new($"'{text}': {message}.");

        public void SkipSpace()
        {
            while (_at < text.Length && char.IsWhiteSpace(text[_at]))
            {
                _at++;
            }
        }

        public Node ParseExpression()
        {
            if (++_depth > MaxDepth)
            {
                throw Error("too deeply nested");
            }
            var parts = new List<Node> { ParseAnd() };
            while (TryConnective("||", "or"))
            {
                parts.Add(ParseAnd());
            }
            _depth--;
            return parts.Count == 1 ? parts[0] : new Or([.. parts]);
        }

        private Node ParseAnd()
        {
            var parts = new List<Node> { ParseUnary() };
            while (TryConnective("&&", "and"))
            {
                parts.Add(ParseUnary());
            }
            return parts.Count == 1 ? parts[0] : new And([.. parts]);
        }

        private Node ParseUnary()
        {
            SkipSpace();
            if (AtEnd)
            {
                throw Error("an expression is missing at the end");
            }
            if (text[_at] == '(')
            {
                _at++;
                var inner = ParseExpression();
                SkipSpace();
                if (AtEnd || text[_at] != ')')
                {
                    throw Error("a ')' is missing");
                }
                _at++;
                return inner;
            }
            // "!" negates unless it starts an operator ("!=", "!~"), which cannot begin a term anyway.
            if (text[_at] == '!' && (_at + 1 >= text.Length || text[_at + 1] is not ('=' or '~')))
            {
                _at++;
                return Unary();
            }
            if (IsWord("not") && (_at + 3 >= text.Length || char.IsWhiteSpace(text[_at + 3]) || text[_at + 3] == '('))
            {
                _at += 3;
                return Unary();
            }
            return ParseTerm();

            Node Unary()
            {
                if (++_depth > MaxDepth)
                {
                    throw Error("too deeply nested");
                }
                var n = new Not(ParseUnary());
                _depth--;
                return n;
            }
        }

        private Node ParseTerm()
        {
            var start = _at;
            var subjectText = ReadWhile(ch => !char.IsWhiteSpace(ch) && ch is not ('=' or '!' or '<' or '>' or '(' or ')' or '[' or ']' or ',' or '~'));
            if (subjectText.Length == 0)
            {
                throw Error($"a subject is missing at '{Rest}'");
            }
            var (subject, attribute) = subjectText switch
            {
                "ec2InstanceId" => (Subject.Ec2InstanceId, null),
                "agentConnected" => (Subject.AgentConnected, null),
                "agentVersion" => (Subject.AgentVersion, null),
                "registeredAt" => (Subject.RegisteredAt, null),
                "runningTasksCount" => (Subject.RunningTasksCount, null),
                "task:group" => (Subject.TaskGroup, null),
                _ when subjectText.StartsWith("attribute:", StringComparison.Ordinal) && subjectText.Length > "attribute:".Length
                    => (Subject.Attribute, subjectText["attribute:".Length..]),
                _ => throw Error($"unknown subject '{subjectText}' (use attribute:NAME, ec2InstanceId, agentConnected, agentVersion, registeredAt, runningTasksCount or task:group)"),
            };
            UsesTaskGroups |= subject == Subject.TaskGroup;
            SkipSpace();
            var opStart = _at;
            var op = ReadOperator() ?? throw Error($"an operator is missing after '{subjectText}'");
            var opText = text[opStart.._at];
            if (!Allowed(subject, op))
            {
                throw Error($"'{opText}' cannot be used with {subjectText}");
            }
            string[] args;
            if (op is Op.Exists or Op.NotExists)
            {
                args = [];
            }
            else if (op is Op.In or Op.NotIn)
            {
                args = ReadList(opText);
            }
            else
            {
                SkipSpace();
                args = [ReadValue(inList: false) ?? throw Error($"a value is missing after '{subjectText} {opText}'")];
            }
            var termText = text[start.._at].Trim();
            return new Term(subject, attribute, op, args, m => Error($"in '{termText}': {m}"));
        }

        private static bool Allowed(Subject subject, Op op) => subject switch
        {
            Subject.Attribute => true,
            Subject.Ec2InstanceId or Subject.AgentConnected or Subject.TaskGroup
                => op is Op.Equal or Op.NotEqual or Op.In or Op.NotIn or Op.Matches or Op.NotMatches,
            _ => op is Op.Equal or Op.NotEqual or Op.Greater or Op.GreaterOrEqual or Op.Less or Op.LessOrEqual,
        };

        private Op? ReadOperator()
        {
            foreach (var (symbol, op) in Symbols)
            {
                if (string.CompareOrdinal(text, _at, symbol, 0, symbol.Length) == 0
                    && (!char.IsLetter(symbol[^1]) || _at + symbol.Length >= text.Length || !IsWordChar(text[_at + symbol.Length])))
                {
                    _at += symbol.Length;
                    return op;
                }
            }
            return null;
        }

        // Longest first, so ">=" is not read as ">" and "not_equals" not as "not_...".
        private static readonly (string, Op)[] Symbols =
        [
            ("greater_than_equal", Op.GreaterOrEqual), ("less_than_equal", Op.LessOrEqual), ("greater_than", Op.Greater),
            ("not_matches", Op.NotMatches), ("less_than", Op.Less), ("not_equals", Op.NotEqual), ("not_exists", Op.NotExists),
            ("!exists", Op.NotExists), ("matches", Op.Matches), ("not_in", Op.NotIn), ("equals", Op.Equal), ("exists", Op.Exists),
            ("!in", Op.NotIn), ("in", Op.In), ("==", Op.Equal), ("!=", Op.NotEqual), (">=", Op.GreaterOrEqual), ("<=", Op.LessOrEqual),
            ("=~", Op.Matches), ("!~", Op.NotMatches), (">", Op.Greater), ("<", Op.Less),
        ];

        private string[] ReadList(string opText)
        {
            SkipSpace();
            if (AtEnd || text[_at] != '[')
            {
                throw Error($"'{opText}' needs a list such as [a, b]");
            }
            _at++;
            var values = new List<string>();
            while (true)
            {
                SkipSpace();
                values.Add(ReadValue(inList: true) ?? throw Error("an empty value in a list"));
                SkipSpace();
                if (AtEnd)
                {
                    throw Error("a ']' is missing");
                }
                var ch = text[_at++];
                if (ch == ']')
                {
                    return [.. values];
                }
                if (ch != ',')
                {
                    throw Error($"expected ',' or ']' in a list, not '{ch}'");
                }
            }
        }

        /// <summary>A quoted value ('...' or "..."), or a bare one up to white space, a parenthesis, "&&" or "||" (and in a list "," or "]").</summary>
        private string? ReadValue(bool inList)
        {
            if (AtEnd)
            {
                return null;
            }
            var quote = text[_at];
            if (quote is '\'' or '"')
            {
                var end = text.IndexOf(quote, _at + 1);
                if (end < 0)
                {
                    throw Error($"a closing {quote} is missing");
                }
                var v = text[(_at + 1)..end];
                _at = end + 1;
                return v;
            }
            var start = _at;
            while (_at < text.Length)
            {
                var ch = text[_at];
                if (char.IsWhiteSpace(ch) || ch is '(' or ')' || (inList && ch is ',' or ']')
                    || ((ch is '&' or '|') && _at + 1 < text.Length && text[_at + 1] == ch))
                {
                    break;
                }
                _at++;
            }
            return _at > start ? text[start.._at] : null;
        }

        private bool TryConnective(string symbol, string word)
        {
            SkipSpace();
            if (string.CompareOrdinal(text, _at, symbol, 0, symbol.Length) == 0)
            {
                _at += symbol.Length;
                return true;
            }
            // IsWord already saw a word boundary; a connective at the very end is read as one, to report what is missing after it.
            if (IsWord(word) && (_at + word.Length == text.Length || char.IsWhiteSpace(text[_at + word.Length]) || text[_at + word.Length] == '('))
            {
                _at += word.Length;
                return true;
            }
            return false;
        }

        private bool IsWord(string word)
            => string.Compare(text, _at, word, 0, word.Length, StringComparison.OrdinalIgnoreCase) == 0
                && (_at + word.Length >= text.Length || !IsWordChar(text[_at + word.Length]));

        private static bool IsWordChar(char ch) => char.IsLetterOrDigit(ch) || ch is '_' or ':' or '.' or '-';

        private string ReadWhile(Func<char, bool> accept)
        {
            var start = _at;
            while (_at < text.Length && accept(text[_at]))
            {
                _at++;
            }
            return text[start.._at];
        }
    }
}
