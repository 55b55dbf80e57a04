# ruff: noqa: E501  (the template is data; its long lines are the prompt text)
"""The Qwen3-VL chat template (Jinja) the tiny checkpoint ships with.

ChatML turns; ``<|vision_start|><|image_pad|><|vision_end|>`` for each image; with
``tools``, a ``# Tools`` system section listing JSON signatures inside ``<tools></tools>``
and asking for ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``; ``tool`` turns
rendered as ``<tool_response>`` blocks inside user turns, as Qwen3-VL does.
"""

__all__ = ["CHAT_TEMPLATE"]

CHAT_TEMPLATE = r"""{#- Qwen3-VL chat template: ChatML turns, vision placeholders, tools in the system turn,
    <tool_call> JSON calls from the assistant, tool results as <tool_response> in user turns. -#}
{%- set image_count = namespace(value=0) -%}
{%- set video_count = namespace(value=0) -%}
{%- macro render_content(content, count_vision) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- elif content is not none -%}
        {%- for part in content -%}
            {%- if part.type == 'image' or 'image' in part or 'image_url' in part -%}
                {%- if count_vision %}{% set image_count.value = image_count.value + 1 %}{% endif -%}
                {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}
                <|vision_start|><|image_pad|><|vision_end|>
            {%- elif part.type == 'video' or 'video' in part -%}
                {%- if count_vision %}{% set video_count.value = video_count.value + 1 %}{% endif -%}
                {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}
                <|vision_start|><|video_pad|><|vision_end|>
            {%- elif 'text' in part -%}
                {{- part.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- if tools -%}
    {{- '<|im_start|>system\n' -}}
    {%- if messages[0].role == 'system' -%}
        {{- render_content(messages[0].content, false) + '\n\n' -}}
    {%- endif -%}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" -}}
    {%- for tool in tools -%}
        {{- '\n' + (tool | tojson) -}}
    {%- endfor -%}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" -}}
{%- elif messages[0].role == 'system' -%}
    {{- '<|im_start|>system\n' + render_content(messages[0].content, false) + '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message.role == 'user' -%}
        {{- '<|im_start|>user\n' + render_content(message.content, true) + '<|im_end|>\n' -}}
    {%- elif message.role == 'assistant' -%}
        {{- '<|im_start|>assistant\n' + render_content(message.content, true) -}}
        {%- if message.tool_calls -%}
            {%- for call in message.tool_calls -%}
                {%- if (loop.first and message.content) or not loop.first %}{{ '\n' }}{% endif -%}
                {%- if call.function %}{% set call = call.function %}{% endif -%}
                {{- '<tool_call>\n{"name": "' + call.name + '", "arguments": ' -}}
                {%- if call.arguments is string %}{{ call.arguments }}{% else %}{{ call.arguments | tojson }}{% endif -%}
                {{- '}\n</tool_call>' -}}
            {%- endfor -%}
        {%- endif -%}
        {{- '<|im_end|>\n' -}}
    {%- elif message.role == 'tool' -%}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{ '<|im_start|>user' }}{% endif -%}
        {{- '\n<tool_response>\n' + render_content(message.content, true) + '\n</tool_response>' -}}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{ '<|im_end|>\n' }}{% endif -%}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""
