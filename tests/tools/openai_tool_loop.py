"""The standard agent tool loop, run by the official `openai` client against
a weft server: a forced call, the tool's result appended, a follow-up that
answers in text; the same streamed; and a call of one named function.

Usage: openai_tool_loop.py BASE_URL API_KEY MODEL. Exits non-zero, saying
why, on any deviation from what an OpenAI client expects."""

import json
import sys

from openai import OpenAI

base, key, model = sys.argv[1:4]
client = OpenAI(base_url=base + "/v1", api_key=key)

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a time zone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}},
]
NAMES = {t["function"]["name"] for t in TOOLS}


def check(cond, what):
    if not cond:
        sys.exit("FAILED: " + what)


def loop(stream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    kw = dict(model=model, messages=messages, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0)
    if stream:
        calls, finish = {}, None
        for chunk in client.chat.completions.create(stream=True, **kw):
            for c in chunk.choices:
                finish = c.finish_reason or finish
                for d in c.delta.tool_calls or []:
                    slot = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] += d.id or ""
                    slot["name"] += (d.function.name or "") if d.function else ""
                    slot["arguments"] += (d.function.arguments or "") if d.function else ""
        check(finish == "tool_calls", f"streamed finish_reason {finish}")
        calls = [calls[i] for i in sorted(calls)]
    else:
        r = client.chat.completions.create(**kw)
        choice = r.choices[0]
        check(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason}")
        calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                 for c in choice.message.tool_calls or []]
    check(len(calls) >= 1, "no tool call")
    for c in calls:
        check(c["name"] in NAMES, f"unknown function {c['name']}")
        args = json.loads(c["arguments"])
        check(isinstance(args, dict), f"arguments {c['arguments']} are not an object")
        if c["name"] == "get_weather":
            check(isinstance(args.get("city"), str), f"city missing from {args}")
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
    for c in calls:
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": "18 degrees celsius, sunny"})
    follow = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, tool_choice="auto",
                                            max_tokens=40, temperature=0)
    m = follow.choices[0].message
    check(not m.tool_calls and m.content and m.content.strip(), f"follow-up is not text: {m}")
    return calls, m.content


calls, answer = loop(stream=False)
scalls, sanswer = loop(stream=True)
named = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "What time is it in Tokyo?"}], tools=TOOLS,
    tool_choice={"type": "function", "function": {"name": "get_time"}}, max_tokens=60, temperature=0)
ncalls = named.choices[0].message.tool_calls
check(ncalls and all(c.function.name == "get_time" for c in ncalls), f"named choice: {ncalls}")
check(isinstance(json.loads(ncalls[0].function.arguments).get("tz"), str), "tz missing")
print(json.dumps({"calls": calls, "answer": answer, "streamed_calls": scalls, "streamed_answer": sanswer,
                  "named": [c.function.arguments for c in ncalls]}))
