`
from langchain_openai import ChatOpenAI

openai_api_key = "EMPTY"
openai_api_base = "http://127.0.0.1:1234/v1"
chat = ChatOpenAI(
    openai_api_key=openai_api_key,
    openai_api_base=openai_api_base,
    temperature=0.7,
)

loader = PyPDFLoader("./pdf/2403.04732.pdf")
pages = loader.load_and_split()
docs = ""
for item in pages:
    docs += item.page_content

from langchain.prompts import ChatPromptTemplate

template = """
'''
{context}
'''
summarize the content of the above paper
"""

prompt = ChatPromptTemplate.from_template(template)

from langchain_core.output_parsers import StrOutputParser

outputParser = StrOutputParser()

chain = prompt | chat | outputParser

res = chain.invoke({"context": docs})
print(res)

`
local model: gemma-2-9b-it 
