"""Round trip of one kv:set over /mcp (tools/call) vs /api/v1/execute, from one keep-alive
client, alternating, 3,000 calls per round. Prints medians and p90 in microseconds.

    target/venvs/mcp/bin/python scripts/mcp_vs_api.py http://127.0.0.1:18890
"""
import httpx2 as httpx, time, statistics, sys, json
base=sys.argv[1]
c=httpx.Client()
H={"accept":"application/json, text/event-stream","mcp-protocol-version":"2025-11-25"}
r=c.post(base+"/mcp",headers=H,json={"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"1"}}})
sid=r.headers["mcp-session-id"]; H["mcp-session-id"]=sid
c.post(base+"/mcp",headers=H,json={"jsonrpc":"2.0","method":"notifications/initialized"})
def mcp():
    r=c.post(base+"/mcp",headers=H,json={"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"kv.set","arguments":{"key":"k","value":1}}}); assert r.status_code==200 and '"isError":false' in r.text, r.text
c.post(base+"/api/v1/session/create",json={"worker_id":"w","resource_type":"kv"})
def api():
    r=c.post(base+"/api/v1/execute",json={"worker_id":"w","action":"kv:set","params":{"key":"k","value":1}}); assert r.status_code==200
for name,f in [("api",api),("mcp",mcp),("api",api),("mcp",mcp)]:
    ts=[]
    for i in range(3000):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    print(name, "median us %.0f p90 %.0f"%(statistics.median(ts)*1e6, sorted(ts)[int(len(ts)*.9)]*1e6))
